"""Add-on preferences: where the weights are, and getting PyTorch into Blender's Python.

Blender's bundled Python has no torch. The "Install PyTorch" button pip-installs the pinned
``torch`` into the extension's own user folder (``extension_path_user(…, "site-packages")``),
which :func:`register` puts on ``sys.path``. It only runs when Blender allows online access
(Preferences → System → Network); the manifest declares the network permission.
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import bpy
from bpy.props import StringProperty

TORCH_PIN = "torch==2.13.0"
#: CPU-only wheels: the default PyPI wheel for Linux pulls gigabytes of CUDA libraries.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _root_package() -> str:
    """``image2lego`` or ``bl_ext.<repo>.image2lego``: the add-on's own package name."""
    pkg = __package__ or __name__.rpartition(".")[0]
    return pkg.rpartition(".")[0] if pkg.endswith(".blender") else pkg


ADDON_ID = _root_package()


def shipped_weights_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "weights"


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def site_packages_dir(create: bool = False) -> Path | None:
    """The extension's private ``site-packages`` folder; ``None`` outside an extension."""
    try:
        return Path(bpy.utils.extension_path_user(ADDON_ID, path="site-packages", create=create))
    except (ValueError, AttributeError, RuntimeError):  # legacy add-on / plain module
        return None


def get_prefs(context=None):
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None else None


def weights_dir(context=None) -> Path | None:
    """The weights folder from the preferences (``None``: the shipped ``weights/``)."""
    prefs = get_prefs(context)
    if prefs is not None and prefs.weights_dir:
        return Path(bpy.path.abspath(prefs.weights_dir))
    return None


def has_weights(path: Path | None = None) -> bool:
    p = path or shipped_weights_dir()
    return p.is_dir() and any(p.glob("*.safetensors"))


def install_command(target: Path) -> list[str]:
    cmd = [sys.executable, "-m", "pip", "install", "--upgrade", "--target", str(target)]
    if sys.platform.startswith("linux"):
        cmd += ["--index-url", TORCH_CPU_INDEX]
    return [*cmd, TORCH_PIN]


class IMAGE2LEGO_OT_install_torch(bpy.types.Operator):
    """Install PyTorch into this extension's own folder (needs online access)"""

    bl_idname = "image2lego.install_torch"
    bl_label = "Install PyTorch"
    bl_options = {"REGISTER"}

    _proc = None
    _timer = None

    def execute(self, context):
        if not bpy.app.online_access:
            self.report(
                {"ERROR"},
                "Online access is disabled: enable Preferences → System → Network → "
                "Allow Online Access, then press Install PyTorch again",
            )
            return {"CANCELLED"}
        target = site_packages_dir(create=True)
        if target is None:
            self.report(
                {"ERROR"},
                "Image2LEGO is not installed as an extension, so it has no private folder; "
                f"install {TORCH_PIN} into Blender's Python yourself",
            )
            return {"CANCELLED"}
        cmd = install_command(target)
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        wm = context.window_manager
        if context.window is None:  # headless: just wait
            out, _ = self._proc.communicate()
            return self._finish(out)
        self._timer = wm.event_timer_add(0.5, window=context.window)
        wm.modal_handler_add(self)
        self.report({"INFO"}, f"Installing {TORCH_PIN} into {target} …")
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type != "TIMER" or self._proc.poll() is None:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        out = self._proc.stdout.read() if self._proc.stdout else b""
        return self._finish(out)

    def _finish(self, out: bytes):
        if self._proc.returncode != 0:
            tail = out.decode("utf-8", "replace").strip().splitlines()[-3:]
            self.report({"ERROR"}, "Installing PyTorch failed: " + " | ".join(tail))
            return {"CANCELLED"}
        _add_site_packages()
        importlib.invalidate_caches()
        self.report({"INFO"}, "PyTorch installed" + ("" if torch_available() else "; restart"))
        return {"FINISHED"}


class Image2LegoPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    weights_dir: StringProperty(
        name="Weights Folder",
        description="Folder with the TL-Octree weights (empty: the shipped weights)",
        subtype="DIR_PATH",
    )

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "weights_dir")
        wdir = Path(bpy.path.abspath(self.weights_dir)) if self.weights_dir else None
        shown = wdir or shipped_weights_dir()
        ok = has_weights(shown)
        layout.label(
            text=f"{'Weights found' if ok else 'No weights'} in {shown}",
            icon="CHECKMARK" if ok else "ERROR",
        )
        box = layout.box()
        if torch_available():
            box.label(text="PyTorch is installed: Image → LEGO can run.", icon="CHECKMARK")
        else:
            box.label(text="PyTorch is not installed: Image → LEGO needs it.", icon="ERROR")
            box.label(text="Voxels → LEGO, LDraw import/export and instructions work without it.")
            if not bpy.app.online_access:
                box.label(text="Enable Preferences → System → Network → Allow Online Access first.")
            box.operator(IMAGE2LEGO_OT_install_torch.bl_idname, icon="IMPORT")


_added_paths: list[str] = []


def _add_site_packages() -> None:
    p = site_packages_dir(create=False)
    if p is not None and p.is_dir() and str(p) not in sys.path:
        sys.path.append(str(p))
        _added_paths.append(str(p))


classes = (IMAGE2LEGO_OT_install_torch, Image2LegoPreferences)


def register() -> None:
    _add_site_packages()
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
    while _added_paths:
        p = _added_paths.pop()
        if p in sys.path:
            sys.path.remove(p)

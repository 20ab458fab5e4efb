"""Add-on preferences: where the weights are, and getting the dependencies into Blender.

Blender's bundled Python has numpy but not torch, scipy, scikit-learn, scikit-image, Pillow,
OpenCV or safetensors. The "Install Dependencies" button pip-installs the pinned versions (the
same as ``requirements.lock``; a test keeps them equal) into the extension's own user folder
(``extension_path_user(…, "site-packages")``), which :func:`register` puts on ``sys.path``.
It only runs when Blender allows online access
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
#: import name -> pinned requirement, for everything Blender's Python lacks.
DEPENDENCIES = {
    "torch": TORCH_PIN,
    "scipy": "scipy==1.17.1",
    "sklearn": "scikit-learn==1.9.1",
    "skimage": "scikit-image==0.26.0",
    "PIL": "pillow==13.0.0",
    "cv2": "opencv-python-headless==4.11.0.86",
    "safetensors": "safetensors==0.8.0",
}
#: Installed beside them so pip resolves against the numpy Blender ships, never numpy 2.
NUMPY_PIN = "numpy==1.26.4"


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


def missing_dependencies() -> list[str]:
    """Pinned requirements whose module cannot be imported here."""
    return [pin for mod, pin in DEPENDENCIES.items() if importlib.util.find_spec(mod) is None]


def install_commands(target: Path, pins: list[str] | None = None) -> list[list[str]]:
    """pip commands installing ``pins`` (default: the missing ones) into ``target``."""
    pins = missing_dependencies() if pins is None else pins
    base = [sys.executable, "-m", "pip", "install", "--upgrade", "--target", str(target)]
    cmds = []
    if TORCH_PIN in pins:
        index = ["--index-url", TORCH_CPU_INDEX] if sys.platform.startswith("linux") else []
        cmds.append([*base, *index, TORCH_PIN, NUMPY_PIN])
    rest = [p for p in pins if p != TORCH_PIN]
    if rest:
        cmds.append([*base, *rest, NUMPY_PIN])
    return cmds


def install_command(target: Path) -> list[str]:
    """One process running every pip command of :func:`install_commands` in turn."""
    import json

    runner = (
        "import json, subprocess, sys\nfor c in json.loads(sys.argv[1]): subprocess.check_call(c)"
    )
    return [sys.executable, "-c", runner, json.dumps(install_commands(target))]


class IMAGE2LEGO_OT_install_torch(bpy.types.Operator):
    """Install PyTorch and the other missing dependencies into this extension's own folder
    (needs online access)"""

    bl_idname = "image2lego.install_torch"
    bl_label = "Install Dependencies"
    bl_options = {"REGISTER"}

    _proc = None
    _timer = None

    def execute(self, context):
        if not bpy.app.online_access:
            self.report(
                {"ERROR"},
                "Online access is disabled: enable Preferences → System → Network → "
                "Allow Online Access, then press Install Dependencies again",
            )
            return {"CANCELLED"}
        target = site_packages_dir(create=True)
        if target is None:
            self.report(
                {"ERROR"},
                "Image2LEGO is not installed as an extension, so it has no private folder; "
                f"install {' '.join(missing_dependencies())} into Blender's Python yourself",
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
        self.report({"INFO"}, f"Installing {' '.join(missing_dependencies())} into {target} …")
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
            self.report({"ERROR"}, "Installing the dependencies failed: " + " | ".join(tail))
            return {"CANCELLED"}
        _add_site_packages()
        importlib.invalidate_caches()
        left = missing_dependencies()
        self.report(
            {"INFO"}, "Dependencies installed" + (f"; restart Blender for {left}" if left else "")
        )
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
        missing = missing_dependencies()
        if not missing:
            box.label(
                text="All dependencies are installed: Image → LEGO can run.", icon="CHECKMARK"
            )
        else:
            box.label(text="Missing: " + ", ".join(p.split("==")[0] for p in missing), icon="ERROR")
            if TORCH_PIN not in missing:
                box.label(text="PyTorch is installed; the LEGO conversion needs the others.")
            else:
                box.label(text="Image → LEGO needs PyTorch; LEGO conversion needs the others.")
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
    from .registry import register_classes

    _add_site_packages()
    register_classes(classes)


def unregister() -> None:
    from .registry import unregister_classes

    unregister_classes(classes)
    while _added_paths:
        p = _added_paths.pop()
        if p in sys.path:
            sys.path.remove(p)

"""Add-on preferences: where the weights are, and whether the bundled dependencies loaded.

Blender's bundled Python has numpy but not scipy, scikit-learn, scikit-image, Pillow, OpenCV
or safetensors. The extension zip bundles them as per-platform wheels (the manifest's
``wheels``; ``tools/build_extension.py``), which Blender installs with the extension: nothing is
downloaded, and torch is not needed (the network runs on numpy, :mod:`..core.npnet`). A zip
built for another platform, or a build without wheels, shows here which modules are missing.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path

import bpy
from bpy.props import StringProperty

#: import name -> pinned requirement (the same as ``requirements.lock``; a test keeps them
#: equal) of everything Image → LEGO needs that Blender's Python lacks.
DEPENDENCIES = {
    "scipy": "scipy==1.17.1",
    "sklearn": "scikit-learn==1.9.1",
    "skimage": "scikit-image==0.26.0",
    "PIL": "pillow==13.0.0",
    "cv2": "opencv-python-headless==4.11.0.86",
    "safetensors": "safetensors==0.8.0",
}


def _root_package() -> str:
    """``image2lego`` or ``bl_ext.<repo>.image2lego``: the add-on's own package name."""
    pkg = __package__ or __name__.rpartition(".")[0]
    return pkg.rpartition(".")[0] if pkg.endswith(".blender") else pkg


ADDON_ID = _root_package()


def shipped_weights_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "weights"


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


@functools.cache
def _missing() -> tuple[str, ...]:
    return tuple(pin for mod, pin in DEPENDENCIES.items() if importlib.util.find_spec(mod) is None)


def missing_dependencies() -> list[str]:
    """Pinned requirements whose module cannot be imported here (looked up once per session:
    the panel asks on every redraw)."""
    return list(_missing())


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
            box.label(text="All dependencies are bundled and loaded.", icon="CHECKMARK")
        else:
            box.label(text="Missing: " + ", ".join(p.split("==")[0] for p in missing), icon="ERROR")
            box.label(text="Install the Image2LEGO zip built for this platform.")


_added_paths: list[str] = []


def _add_site_packages() -> None:
    p = site_packages_dir(create=False)
    if p is not None and p.is_dir() and str(p) not in sys.path:
        sys.path.append(str(p))
        _added_paths.append(str(p))


classes = (Image2LegoPreferences,)


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

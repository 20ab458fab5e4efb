"""Image2LEGO: a Blender extension and Python package that turns a photo into LEGO.

This file only registers the Blender classes. It imports cleanly without bpy so that
``import image2lego`` works in plain Python (for ``image2lego.lego`` and ``image2lego.core``).
"""

from __future__ import annotations

__version__ = "0.1.0"

_registered_modules: list = []


def _modules():
    # Imported lazily: these modules need bpy, which plain Python does not have.
    from . import operators, panels
    from .blender import preferences, properties

    return [preferences, properties, operators, panels]


def register() -> None:
    for mod in _modules():
        mod.register()
        _registered_modules.append(mod)


def unregister() -> None:
    while _registered_modules:
        _registered_modules.pop().unregister()

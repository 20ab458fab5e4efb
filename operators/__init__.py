"""Blender operators: thin adapters over ``core`` and ``lego``.

Each submodule defines ``classes``: the bpy classes it registers, in order.
"""

from __future__ import annotations

import importlib

# Submodules in registration order. Each owner adds their own file here.
_SUBMODULES = ("build", "io", "instructions", "animation")


def _classes():
    out = []
    for name in _SUBMODULES:
        mod = importlib.import_module(f".{name}", __name__)
        out.extend(getattr(mod, "classes", ()))
    return out


def register() -> None:
    import bpy

    for cls in _classes():
        bpy.utils.register_class(cls)


def unregister() -> None:
    import bpy

    for cls in reversed(_classes()):
        bpy.utils.unregister_class(cls)

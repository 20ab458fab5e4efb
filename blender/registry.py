"""Register the bpy classes of a package's submodules (used by ``operators/`` and ``panels/``).

Each submodule lists its classes in a ``classes`` tuple, in registration order.
"""

from __future__ import annotations

import importlib


def submodule_classes(package: str, names: tuple[str, ...]) -> list:
    out = []
    for name in names:
        mod = importlib.import_module(f".{name}", package)
        out.extend(getattr(mod, "classes", ()))
    return out


def register(package: str, names: tuple[str, ...]) -> None:
    import bpy

    for cls in submodule_classes(package, names):
        bpy.utils.register_class(cls)


def unregister(package: str, names: tuple[str, ...]) -> None:
    import bpy

    for cls in reversed(submodule_classes(package, names)):
        bpy.utils.unregister_class(cls)

"""Image2LEGO: a Blender extension and Python package that turns a photo into LEGO.

This file only registers the Blender classes. It imports cleanly without bpy so that
``import image2lego`` works in plain Python (for ``image2lego.lego`` and ``image2lego.core``).
Registration is all-or-nothing: if any part fails, what was registered is unregistered again
and the error says which part and why (Blender shows it in the Add-ons list).
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
    name = "the add-on's modules"
    try:
        for mod in _modules():
            name = mod.__name__.rpartition(".")[2]
            mod.register()
            _registered_modules.append(mod)
    except Exception as exc:
        unregister()
        from .blender.registry import RegistrationError

        raise RegistrationError(
            f"Image2LEGO could not register ({name}: {exc}); nothing of it was left registered"
        ) from exc


def unregister() -> None:
    while _registered_modules:
        mod = _registered_modules.pop()
        try:
            mod.unregister()
        except Exception as exc:  # noqa: BLE001 - unregister the rest whatever happens
            print(f"Image2LEGO: unregistering {mod.__name__} failed: {exc}")

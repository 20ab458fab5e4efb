"""All-or-nothing registration of bpy classes (used by every module that registers some).

Each submodule of ``operators/`` and ``panels/`` lists its classes in a ``classes`` tuple, in
registration order, and may define ``register_extra()`` / ``unregister_extra()`` for menus and
other hooks. A failure part way unregisters what this call registered and raises
:class:`RegistrationError` naming the class and the reason, so a failed enable never leaves
classes behind (re-enabling then fails with "already registered" in Blender otherwise).
"""

from __future__ import annotations

import importlib


class RegistrationError(RuntimeError):
    """The add-on could not register; nothing of it stays registered."""


def submodule_classes(package: str, names: tuple[str, ...]) -> list:
    out = []
    for name in names:
        mod = importlib.import_module(f".{name}", package)
        out.extend(getattr(mod, "classes", ()))
    return out


def _name(cls) -> str:
    return getattr(cls, "bl_idname", None) or cls.__name__


def register_classes(classes) -> None:
    """Register ``classes`` in order; on a failure unregister those already done and raise."""
    import bpy

    done = []
    try:
        for cls in classes:
            if getattr(cls, "is_registered", False):  # left over by an earlier failed enable
                bpy.utils.unregister_class(cls)
            bpy.utils.register_class(cls)
            done.append(cls)
    except Exception as exc:
        unregister_classes(done)
        raise RegistrationError(f"cannot register {_name(cls)}: {exc}") from exc


def unregister_classes(classes) -> list[str]:
    """Unregister ``classes`` in reverse order; keeps going past failures, returns them."""
    import bpy

    errors = []
    for cls in reversed(list(classes)):
        if not getattr(cls, "is_registered", True):
            continue
        try:
            bpy.utils.unregister_class(cls)
        except Exception as exc:  # noqa: BLE001 - unregister as much as possible
            errors.append(f"{_name(cls)}: {exc}")
    return errors


def _hooks(package: str, names: tuple[str, ...], attr: str) -> list:
    mods = [importlib.import_module(f".{n}", package) for n in names]
    return [getattr(m, attr) for m in mods if hasattr(m, attr)]


def register(package: str, names: tuple[str, ...]) -> None:
    classes = submodule_classes(package, names)
    register_classes(classes)
    done = []
    try:
        for hook in _hooks(package, names, "register_extra"):
            hook()
            done.append(hook)
    except Exception as exc:
        for undo in _hooks(package, names, "unregister_extra")[: len(done)][::-1]:
            try:
                undo()
            except Exception:  # noqa: BLE001, S110
                pass
        unregister_classes(classes)
        raise RegistrationError(f"cannot register {package}: {exc}") from exc


def unregister(package: str, names: tuple[str, ...]) -> list[str]:
    errors = []
    for undo in reversed(_hooks(package, names, "unregister_extra")):
        try:
            undo()
        except Exception as exc:  # noqa: BLE001
            errors.append(str(exc))
    return errors + unregister_classes(submodule_classes(package, names))

"""Blender operators: thin adapters over ``core`` and ``lego``.

Each submodule defines ``classes``: the bpy classes it registers, in order.
"""

from __future__ import annotations

from ..blender import registry

# Submodules in registration order; each defines ``classes``.
_SUBMODULES = ("build", "io", "instructions", "animation", "model", "face", "mosaic", "caption")


def register() -> None:
    registry.register(__name__, _SUBMODULES)


def unregister() -> None:
    registry.unregister(__name__, _SUBMODULES)

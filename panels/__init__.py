"""Blender panels: the 3D Viewport sidebar tab "LEGO".

Each submodule defines ``classes``: the bpy classes it registers, in order.
"""

from __future__ import annotations

from ..blender import registry

# Submodules in registration order; each defines ``classes``.
_SUBMODULES = ("sidebar", "face")


def register() -> None:
    registry.register(__name__, _SUBMODULES)


def unregister() -> None:
    registry.unregister(__name__, _SUBMODULES)

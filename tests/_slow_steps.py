"""A step generator for tests/test_blender_background.py's child-process runs (no bpy)."""

from __future__ import annotations

import time

from image2lego.lego.progress import Progress


def one_long_step(seconds: float = 30.0):
    """One quick step, then one that no step boundary interrupts (like a long repair)."""
    yield Progress(0.1, "quick step")
    time.sleep(seconds)
    yield Progress(0.9, "long step done")
    return "finished"

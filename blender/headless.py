"""Blender products for the CLI and the demo, run in-process through ``bpy`` (no UI).

Builds the model into a fresh scene with :mod:`.scene`, renders ``render.png`` and the
instruction booklet with :mod:`.instructions`, keys the build animation with
:mod:`.animation` and saves ``model.blend`` — the same code the add-on's operators call.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import bpy

from ..lego.bricks import BrickModel
from ..lego.errors import get_logger
from ..lego.fileio import atomic_path
from ..lego.progress import Progress
from . import animation
from . import instructions as instr
from . import scene as lego_scene

RENDER_SIZE = (1200, 900)
log = get_logger()


def _fresh_scene() -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)


def blender_outputs(
    model: BrickModel,
    out: Path,
    *,
    title: str = "Image2LEGO model",
    render: bool = True,
    instructions: bool = True,
    blend: bool = True,
    progress: Callable | None = None,
) -> dict[str, Path]:
    """Write ``render.png``, ``instructions.{html,pdf}`` (+ images) and ``model.blend``.

    ``progress``: optional callback receiving ``Progress(fraction, message)`` for the whole
    of it (the instruction renders report per step)."""
    out = Path(out)
    # Share of the whole each product takes (instructions dominate).
    spans = [
        ("render", render, 0.08),
        ("instructions", instructions, 0.84),
        ("blend", blend, 0.08),
    ]
    total = sum(w for _k, on, w in spans if on) or 1.0
    done = 0.0

    def report(kind: str, fraction: float, message: str) -> None:
        if progress is not None:
            w = dict((k, ww) for k, _on, ww in spans)[kind] / total
            progress(Progress(min(1.0, done + w * fraction), message))

    def finished(kind: str) -> None:
        nonlocal done
        done += dict((k, ww) for k, _on, ww in spans)[kind] / total

    _fresh_scene()
    context = bpy.context
    coll = lego_scene.build_model(context, model, name="LEGO Model")
    written: dict[str, Path] = {}
    if render:
        log.debug("Rendering render.png")
        report("render", 0.0, "Rendering render.png")
        written["render"] = render_image(context, coll, out / "render.png", RENDER_SIZE)
        finished("render")
    if instructions:
        log.debug(f"Rendering instructions ({model.n_steps()} steps)")
        res = instr.run(
            instr.render_instructions(context, coll, out, title=title),
            lambda p: report("instructions", p.fraction, p.message),
        )
        written["instructions_html"] = res.html
        written["instructions_pdf"] = res.pdf
        finished("instructions")
    if blend:
        log.debug("Keying the build animation and saving model.blend")
        report("blend", 0.0, "Saving model.blend")
        animation.animate_build(context, coll)
        written["blend"] = save_blend(out / "model.blend")
        finished("blend")
    if progress is not None:
        progress(Progress(1.0, "Blender outputs written"))
    return written


def render_image(context, collection, path: Path, resolution=RENDER_SIZE) -> Path:
    """A Workbench render of the finished model through the instruction camera."""
    path = Path(path)
    stage = Path(tempfile.mkdtemp(prefix=".i2l-render-", dir=path.parent))
    try:
        gen = instr.render_steps(
            context, collection, stage, resolution, thumbnails=False, steps=False
        )
        instr.run(gen)
        os.replace(stage / "cover.png", path)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return path


def save_blend(path: Path) -> Path:
    """Save a copy of the current file atomically (temporary name, then rename)."""
    path = Path(path)
    with atomic_path(path, suffix=".blend") as tmp:
        bpy.ops.wm.save_as_mainfile(filepath=str(tmp), copy=True, compress=True)
    return path

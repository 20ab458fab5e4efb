"""Write a pipeline result into an output folder (the CLI's and the demo's job).

Plain-Python files (LDraw, parts lists, voxels, report) always; Blender products (render,
instructions booklet, ``.blend``) when ``bpy`` is importable. A run is all-or-nothing for the
folder (:func:`lego.staging.staged_output`): everything is built in a hidden staging folder and
swapped in together at the end, so a failed, interrupted or concurrent run never leaves a
folder that mixes two results.
"""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import numpy as np

from .core.pipeline import PipelineResult
from .lego.errors import Image2LegoError, get_logger
from .lego.fileio import (
    atomic_write_bytes,
    atomic_write_text,
    check_output_dir,
    check_path_text,
)
from .lego.staging import staged_output
from .lego.summary import Report

log = get_logger()

#: Blender products are refused, before any of them starts, for models past these sizes (issue
#: #22: every input ends within a stated budget). Each instruction step is one render (0.3-0.9 s
#: wall on a 2-core machine), so 500 steps (a 64³ solid has 432) is minutes; a 128³ solid has
#: ~3,000. The render and the .blend grow with the bricks: 88,288 (128³ solid) ~40 s of CPU.
MAX_INSTRUCTION_STEPS = 500
MAX_SCENE_BRICKS = 100_000


class OutputLimitError(Image2LegoError, ValueError):
    """A Blender product was asked for a model over its size limit (one-line message)."""


def check_output_limits(
    model,
    render: bool,
    instructions: bool,
    blend: bool,
    max_steps: float | None = None,
    max_bricks: float | None = None,
    remedy: str | None = None,
) -> None:
    """Raise :class:`OutputLimitError` when the asked-for Blender products of ``model`` are
    over ``max_bricks`` bricks or ``max_steps`` instruction steps (``None``: the module's
    :data:`MAX_SCENE_BRICKS` / :data:`MAX_INSTRUCTION_STEPS`; ``math.inf``: no limit).

    ``remedy``: what the message tells the user to do instead (default: the CLI's ``--no-…``
    flags; the Blender add-on, which has no flags, says its own)."""
    max_steps = MAX_INSTRUCTION_STEPS if max_steps is None else max_steps
    max_bricks = MAX_SCENE_BRICKS if max_bricks is None else max_bricks
    scene = [n for n, on in (("render", render), ("instructions", instructions)) if on]
    scene += ["blend"] if blend else []
    if scene and len(model) > max_bricks:
        flags = " ".join(f"--no-{n}" for n in scene)
        what = "" if remedy else " for the render, the instructions and the .blend"
        raise OutputLimitError(
            f"a Blender scene of {len(model):,} bricks is over the limit of {max_bricks:,}"
            f"{what}; " + (remedy or f"leave them out ({flags}) or build a smaller model")
        )
    if instructions and model.n_steps() > max_steps:
        raise OutputLimitError(
            f"the instructions would have {model.n_steps():,} steps, over the limit of "
            f"{max_steps:,} (each step is a render); "
            + (remedy or "leave them out (--no-instructions) or build a smaller model")
        )


PARTS_FILES = {"csv": "parts.csv", "bricklink": "bricklink.xml", "rebrickable": "rebrickable.csv"}
#: every file and folder a run owns in its output folder: an earlier run's ones that a new run
#: does not make (another --formats, no photo, no bpy) are removed when the new result goes in
PRODUCTS = (
    "model.ldr",
    "model.mpd",
    *PARTS_FILES.values(),
    "voxels.npy",
    "input.png",
    "mask.png",
    "report.json",
    "render.png",
    "instructions.html",
    "instructions.pdf",
    "instructions_images",
    "model.blend",
)


def has_bpy() -> bool:
    return importlib.util.find_spec("bpy") is not None


def ensure_out_dir(out: Path) -> Path:
    out = check_output_dir(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create output folder {out}: {exc.strerror or exc}") from exc
    return out


def summary(result: PipelineResult) -> Report:
    """report.json's facts: :func:`lego.summary.model_summary` (the same keys Blender's Stats
    panel shows) plus the voxel grid, dropped fragments and the model's warnings."""
    from .lego.summary import model_summary

    model = result.model
    out: Report = {
        "voxels": int(result.voxels.sum()),
        "grid": list(result.voxels.shape),
        **model_summary(model, result.stability),
    }
    if result.image is not None:  # a photo: floating specks removed
        out["fragments_dropped_cells"] = result.fragments_dropped_cells
    # a face bust (core.face), a caption (core.caption)
    if isinstance(model.meta.get("face"), dict):
        out["face"] = dict(model.meta["face"])
    if isinstance(model.meta.get("caption"), dict):
        out["caption"] = dict(model.meta["caption"])
    warnings = model.meta.get("warnings") or []
    if warnings:
        out["warnings"] = [str(w) for w in warnings]
    return out


def _png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def write_all(
    result: PipelineResult,
    out: Path,
    formats=("ldr", "mpd", "csv", "bricklink", "rebrickable"),
    render: bool = True,
    instructions: bool = True,
    blend: bool = True,
    source: Path | None = None,
    progress=None,
    max_steps: float | None = None,
    max_bricks: float | None = None,
) -> dict[str, Path]:
    """Write every requested product; return ``{kind: path}``. ``progress``: optional
    callback receiving ``Progress(fraction, message)`` while Blender renders.

    All-or-nothing: the products are built in a staging folder inside ``out`` and swapped in
    together only when every one of them succeeded; on any error ``out`` is left as it was.
    Blender products of a model over ``max_bricks`` bricks / ``max_steps`` instruction steps
    (:func:`check_output_limits`) are refused before anything is written.
    """
    out = check_output_dir(out)
    if has_bpy():
        check_output_limits(result.model, render, instructions, blend, max_steps, max_bricks)
    if source is not None:
        source = check_path_text(source, "source file name")
    with staged_output(out, products=PRODUCTS) as stage:
        staged = _write_products(
            result, stage, formats, render, instructions, blend, source, progress
        )
    return {kind: out / _relative(path, stage) for kind, path in staged.items()}


def _relative(path: Path, stage: Path) -> Path:
    try:
        return Path(path).relative_to(stage)
    except ValueError:  # a writer handed back a resolved path (symlinked folder)
        return Path(path).resolve().relative_to(stage.resolve())


def _write_products(
    result: PipelineResult,
    out: Path,
    formats,
    render: bool,
    instructions: bool,
    blend: bool,
    source: Path | None,
    progress=None,
) -> dict[str, Path]:
    from .lego import ldraw, partslist

    model = result.model
    title = f"Image2LEGO model of {source.stem}" if source else "Image2LEGO model"
    written: dict[str, Path] = {}
    if "ldr" in formats:
        written["ldraw"] = ldraw.write_ldr(model, out / "model.ldr", title=title)
    if "mpd" in formats:
        written["ldraw_mpd"] = ldraw.write_mpd(model, out / "model.mpd", title=title)
    for fmt, name in PARTS_FILES.items():
        if fmt in formats:
            written[f"parts_{fmt}"] = partslist.write_parts(model, out / name, fmt=fmt)
    buf = io.BytesIO()
    np.save(buf, result.voxels)
    written["voxels"] = atomic_write_bytes(out / "voxels.npy", buf.getvalue())
    if result.image is not None:
        written["input"] = atomic_write_bytes(out / "input.png", _png_bytes(result.image))
    if result.mask is not None:
        mask = (result.mask.astype(np.uint8)) * 255
        written["mask"] = atomic_write_bytes(out / "mask.png", _png_bytes(mask))
    report = summary(result)
    stab = result.stability
    if stab is not None:
        report["stability_summary"] = stab.summary()
    written["report"] = atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    if (render or instructions or blend) and not has_bpy():
        log.info(
            "bpy (Blender as a Python module) is not installed: skipping render, "
            "instructions and .blend"
        )
        return written
    if render or instructions or blend:
        from .blender import headless

        written.update(
            headless.blender_outputs(
                model,
                out,
                title=title,
                render=render,
                instructions=instructions,
                blend=blend,
                progress=progress,
            )
        )
    return written

"""What the operators do, without the operator boilerplate (so it is testable directly).

Every job checks its inputs first and builds the scene / writes files only at the very end,
so a failure or a cancel leaves the scene and the disk as they were.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from ..lego.bricks import BrickModel
from ..lego.errors import Image2LegoError
from ..lego.summary import stability_summary
from . import scene as lego_scene


class JobError(Image2LegoError, ValueError):
    """A problem with the user's input, reported as is."""


# --------------------------------------------------------------------------- checks


def dependencies_missing_message() -> str | None:
    """A plain sentence naming the missing dependencies, or ``None`` when all are there."""
    from .preferences import missing_dependencies

    missing = [pin.split("==")[0] for pin in missing_dependencies()]
    if missing:
        return (
            f"Missing in Blender's Python: {', '.join(missing)}. Install the Image2LEGO zip "
            "built for this platform (it bundles them)"
        )
    return None


def check_image(path: Path | None) -> Path:
    if path is None:
        raise JobError("no input image: choose one in the LEGO tab's Input section")
    if not path.is_file():
        raise JobError(f"input image not found: {path}")
    return path


def check_output_dir(path: Path | None) -> Path | None:
    """``None`` (no output wanted) or a folder we can write into (existing or creatable).

    Raises :class:`JobError` for a path that is a file, or a folder that cannot be written.
    """
    if path is None:
        return None
    from ..lego.fileio import check_output_dir as check

    try:
        check(path)
    except ValueError as e:
        raise JobError(str(e)) from None
    return path


# --------------------------------------------------------------------------- size limits

#: what the add-on (which has no ``--no-…`` flags) tells a user whose model is over a limit
SCENE_REMEDY = (
    "build a smaller model (a lower resolution), or write its LDraw and parts list from the "
    "command line (python -m image2lego … --no-render --no-instructions --no-blend)"
)
INSTRUCTIONS_REMEDY = "build a smaller model (a lower resolution) for a booklet"


def check_scene_limits(model: BrickModel) -> None:
    """The CLI's size limit for a Blender scene (``outputs.MAX_SCENE_BRICKS``, issue #22),
    checked before a model is built or any of its files written: a one-line error."""
    from .. import outputs

    outputs.check_output_limits(
        model, render=False, instructions=False, blend=True, remedy=SCENE_REMEDY
    )


def check_instructions_limits(model: BrickModel) -> None:
    """The CLI's limits for the instruction booklet (``outputs.MAX_INSTRUCTION_STEPS`` steps,
    ``outputs.MAX_SCENE_BRICKS`` bricks), checked before the first render."""
    from .. import outputs

    outputs.check_output_limits(
        model, render=False, instructions=True, blend=False, remedy=INSTRUCTIONS_REMEDY
    )


# --------------------------------------------------------------------------- outputs


def output_paths(out_dir: Path, name: str) -> dict[str, Path]:
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in name).strip("_") or "model"
    return {"ldr": out_dir / f"{stem}.ldr", "parts": out_dir / f"{stem}_parts.csv"}


def write_outputs(model: BrickModel, out_dir: Path, name: str) -> dict[str, Path]:
    """Write ``<name>.ldr`` and ``<name>_parts.csv`` together or not at all.

    The same all-or-nothing writer as the CLI's (:func:`lego.staging.staged_output`): both
    files are built in a hidden staging folder and swapped in together, so a failure (full
    disk, a colour without a part-list id) leaves the folder as it was.
    """
    from ..lego import ldraw, partslist
    from ..lego.staging import OutputError, staged_output

    paths = output_paths(out_dir, name)
    try:
        with staged_output(out_dir) as stage:
            ldraw.write_ldr(model, stage / paths["ldr"].name, title=name)
            partslist.write_parts(model, stage / paths["parts"].name, "csv")
    except OutputError as exc:
        raise JobError(str(exc)) from None
    return paths


# --------------------------------------------------------------------------- building


def settings_of(context):
    return getattr(context.scene, "image2lego", None)


def pipeline_options(context):
    from . import preferences, properties

    s = settings_of(context)
    return properties.pipeline_options(s, preferences.weights_dir(context))


def model_name(context, name: str | None = None) -> str:
    """``name``, else the settings' model name, else "LEGO Model"."""
    s = settings_of(context)
    return name or (s.model_name if s is not None else "") or "LEGO Model"


def result_stats(result) -> dict:
    """The Stats panel's facts of a ``PipelineResult`` (no bpy: safe on the worker thread)."""
    stats = lego_scene.compute_stats(result.model, result.stability)
    if result.image is not None:  # a photo: its floating specks
        stats["fragments_dropped_cells"] = result.fragments_dropped_cells
    return stats


@dataclass
class Prepared:
    """A finished pipeline run with everything that needs no bpy already done: the output
    files written and the stats computed (see :func:`prepare_steps`)."""

    result: object  # a core.pipeline.PipelineResult
    stats: dict


def prepare_steps(steps, out_dir: Path | None, name: str):
    """The pipeline's steps, then the work that needs no bpy, so a worker thread does it and
    the main thread only builds the scene: writing the output files and the stats."""
    from ..lego.progress import Progress

    result = yield from steps
    check_scene_limits(result.model)  # before any file is written or the scene touched
    if out_dir is not None:
        yield Progress(0.97, f"Writing the files to {out_dir}")
        write_outputs(result.model, out_dir, name)
    return Prepared(result, result_stats(result))


def finish(context, result, name: str | None = None, out_dir: Path | None = None):
    """Write the outputs (if any) and build the scene from a ``PipelineResult`` — or, from a
    :class:`Prepared` one (files already written, stats computed), only build the scene."""
    s = settings_of(context)
    name = model_name(context, name)
    method = s.method if s is not None else lego_scene.DEFAULT_METHOD
    if isinstance(result, Prepared):
        stats, result = result.stats, result.result
    else:
        check_scene_limits(result.model)
        if out_dir is not None:
            write_outputs(result.model, out_dir, name)
        stats = result_stats(result)
    model = result.model
    coll = lego_scene.build_model(context, model, name=name, method=method, stats=stats)
    lego_scene.setup_scene(context.scene)
    coll["i2l_warnings"] = model_warnings(stats, result.stability)
    if s is not None:
        s.display_mode = "colors"
    return coll


def image_steps(context, child: bool = False):
    """Checked inputs → the image pipeline's step generator. Raises JobError before any work.

    ``child``: where the run is long (:func:`.subproc.use_child`), the steps run in a child
    process (a :class:`.subproc.ChildRun`, whose ``kill`` ends it at once)."""
    from . import properties

    s = settings_of(context)
    msg = dependencies_missing_message()
    if msg:
        raise JobError(msg)
    path = check_image(properties.image_path(s))
    out_dir = check_output_dir(properties.output_dir(s))
    from ..core.pipeline import image_to_lego_steps

    opts = pipeline_options(context)
    if child:
        from . import subproc

        if subproc.use_child(opts.resolution):
            run = subproc.ChildRun("core.pipeline:image_to_lego_steps", (str(path), opts))
            return run, out_dir
    return image_to_lego_steps(str(path), opts), out_dir


def voxel_steps(context, path: str | os.PathLike, child: bool = False):
    """Checked voxel file → the voxel pipeline's steps; ``child``: a grid of 64 or more per
    axis (:func:`.subproc.use_child`) runs in a child process, as a 64³ Image → LEGO does."""
    from ..core.pipeline import load_voxel_file, voxels_to_lego_steps
    from . import properties

    s = settings_of(context)
    out_dir = check_output_dir(properties.output_dir(s)) if s is not None else None
    grid = load_voxel_file(path)
    opts = pipeline_options(context)
    if child:
        from . import subproc

        if subproc.use_child(max(grid.shape)):
            return subproc.ChildRun("core.pipeline:voxels_to_lego_steps", (grid, opts)), out_dir
    return voxels_to_lego_steps(grid, opts), out_dir


def brickify_steps(context):
    """Selected mesh objects → (step generator, out_dir, model name, object names): voxelized
    at the chosen resolution with colours from their textures / vertex colours / materials,
    then through the same lego/ pipeline as a prediction. Mesh data is read here, on the main
    thread; the generator touches no bpy data (it runs on the worker)."""
    from ..core.pipeline import Progress, voxels_to_lego_steps
    from ..lego.meshvox import voxelize
    from . import properties
    from .meshcolors import mesh_triangles

    obs = [
        o
        for o in getattr(context, "selected_objects", [])
        if o.type == "MESH"
        and not any(lego_scene.is_model_collection(c) for c in o.users_collection)
    ]
    if not obs:
        raise JobError(
            "select one or more mesh objects to brickify (LEGO models themselves are skipped)"
        )
    s = settings_of(context)
    out_dir = check_output_dir(properties.output_dir(s)) if s is not None else None
    tris, sampler = mesh_triangles(obs, context.evaluated_depsgraph_get())
    opts = pipeline_options(context)
    if sampler is not None and opts.convert.color_mode == "single":
        opts.convert.color_mode = "photo"  # the mesh has colours: use them
    res = opts.resolution
    name = lego_scene.unique_model_name(context, f"{obs[0].name} LEGO")

    def steps():
        yield Progress(0.05, f"Voxelizing {len(tris)} triangles at {res}³")
        grid, colors = voxelize(tris, res, sample_colors=sampler)
        if not grid.any():
            raise JobError("the selected mesh gave no voxels")
        if colors is None:
            opts.convert.color_mode = "single"
        return (yield from voxels_to_lego_steps(grid, opts, colors=colors))

    return steps(), out_dir, name, [o.name for o in obs]


def import_ldraw(context, path: str | os.PathLike):
    from ..lego.ldraw import parse_ldr

    p = Path(path)
    if not p.is_file():
        raise JobError(f"LDraw file not found: {p}")
    model = parse_ldr(p)
    check_scene_limits(model)
    s = settings_of(context)
    method = s.method if s is not None else lego_scene.DEFAULT_METHOD
    # never replaces a model already in the scene: a second import gets "stem.001"
    name = lego_scene.unique_model_name(context, p.stem)
    coll = lego_scene.build_model(context, model, name=name, method=method, replace=False)
    lego_scene.setup_scene(context.scene)
    return coll


def current_model(context):
    coll = lego_scene.find_model_collection(context)
    if coll is None:
        raise JobError("no LEGO model in the scene: build one first")
    return coll, lego_scene.model_from_collection(coll)


def export_ldraw(context, path: str | os.PathLike) -> Path:
    from ..lego import ldraw

    coll, model = current_model(context)
    p = Path(path)
    check_output_dir(p.parent)
    title = coll.get(lego_scene.MARK_KEY) or coll.name
    try:
        if p.suffix.lower() == ".mpd":
            return ldraw.write_mpd(model, p, title=title)
        return ldraw.write_ldr(model, p, title=title)
    except OSError as exc:
        raise JobError(f"cannot write {p}: {exc.strerror or exc}") from exc


PARTS_EXT = {"csv": ".csv", "bricklink": ".xml", "rebrickable": ".csv"}


def export_parts(context, path, fmt: str = "csv", skip_unknown: bool = False) -> Path:
    from ..lego import partslist

    _, model = current_model(context)
    p = Path(path)
    if p.suffix.lower() != PARTS_EXT[fmt]:
        p = p.with_suffix(PARTS_EXT[fmt])
    check_output_dir(p.parent)
    try:
        return partslist.write_parts(model, p, fmt, skip_unknown=skip_unknown)
    except OSError as exc:
        raise JobError(f"cannot write {p}: {exc.strerror or exc}") from exc


# --------------------------------------------------------------------------- warnings


def model_warnings(stats: dict, stability=None) -> list[str]:
    """Plain sentences for what the user must know about a built model (empty: all good)."""
    out = []
    if stats.get("connected") is False:
        out.append("the model falls apart into separate pieces (not connected)")
    if stats.get("stable") is False:
        out.append(
            f"the model is not stable (max stress {float(stats.get('max_stress', 'nan')):.2f}; "
            "Highlight Stress shows where)"
        )
    if stats.get("unsupported_bricks"):
        out.append(f"{stats['unsupported_bricks']} brick(s) rest on nothing")
    unfixed = getattr(stability, "unrepairable", None)  # a lego.repair.RepairReport
    if unfixed:
        out.append(f"repair could not fix {len(unfixed)} brick(s)")
    return out


# --------------------------------------------------------------------------- stress display


def stress_scores(model: BrickModel):
    """Per-brick stress scores and the stability report from ``lego.stability``."""
    from ..lego.stability import analyze_stability

    rep = analyze_stability(model)
    if rep.stable and rep.max_stress >= 1.0 - 1e-6:
        # The default LP's scores reach 1 on the studs where the least pull would overload;
        # the min-max equilibrium shows how much margin the model really has.
        rep = analyze_stability(model, objective="max")
    return np.asarray(rep.stress, dtype=float), rep


def toggle_stress(context, coll=None) -> str:
    """Switch the model between colour and stress display; return the new mode."""
    if coll is None:
        coll, model = current_model(context)
    else:
        model = lego_scene.model_from_collection(coll)
    if coll.get(lego_scene.DISPLAY_KEY) == "stress":
        lego_scene.set_display(coll, None)
        mode = "colors"
    else:
        scores, rep = stress_scores(model)
        lego_scene.set_display(coll, scores)
        stats = lego_scene.get_stats(coll)
        stats.update(stability_summary(rep))
        lego_scene.set_stats(coll, stats)
        mode = "stress"
    for s in (settings_of(context), getattr(coll, "image2lego", None)):
        if s is not None:
            s.display_mode = mode
    return mode


# --------------------------------------------------------------------------- preview


PREVIEW_IMAGE = "I2L Input Preview"
PREVIEW_MASK = "I2L Mask Preview"


def _to_image(name: str, gray: np.ndarray) -> bpy.types.Image:
    h, w = gray.shape
    img = bpy.data.images.get(name)
    if img is None or tuple(img.size) != (w, h):
        if img is not None:
            bpy.data.images.remove(img)
        img = bpy.data.images.new(name, w, h, alpha=False)
    g = np.flipud(gray.astype(np.float32))  # Blender images start at the bottom row
    rgba = np.empty((h, w, 4), dtype=np.float32)
    rgba[..., :3] = g[..., None]
    rgba[..., 3] = 1.0
    img.pixels.foreach_set(rgba.ravel())
    img.update()
    img.preview_ensure()
    return img


def preview_input(context) -> tuple[bpy.types.Image, bpy.types.Image]:
    """Load the 128² grayscale and mask the network will see into ``bpy.data.images``."""
    from ..core.preprocess import preprocess_image
    from . import properties

    path = check_image(properties.image_path(settings_of(context)))
    pre = preprocess_image(str(path))
    img = _to_image(PREVIEW_IMAGE, np.asarray(pre.image, dtype=np.float32) / 255.0)
    mask = _to_image(PREVIEW_MASK, np.asarray(pre.mask, dtype=np.float32))
    return img, mask

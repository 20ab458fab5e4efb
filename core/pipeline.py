"""The whole job as a step generator: image or voxels → bricks → files.

Long work is a generator that yields :class:`Progress` and returns a :class:`PipelineResult`,
so a Blender modal operator can drive it one step per timer tick (and cancel between steps),
while the CLI and the tests simply run it to the end with :func:`run`.

Nothing here imports bpy or torch: images go through the numpy runtime (core.npnet).
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..lego.bricks import BrickModel
from ..lego.convert import ConvertOptions, voxels_to_bricks
from ..lego.progress import Progress, run  # noqa: F401  (the pipeline's API)
from ..lego.repair import RepairOptions, RepairReport, repair
from ..lego.stability import ANALYSIS_BUDGET_S, StabilityBudgetError, fully_supported
from ..lego.voxels import FRAGMENT_FRACTION, drop_fragments, validate_grid

RESOLUTIONS = (4, 8, 16, 32)
#: Models up to this many bricks are checked for stability and repaired by default (a 64³
#: prediction is 1,200-2,000 bricks); every check also stops at ANALYSIS_BUDGET_S.
REPAIR_MAX_BRICKS = 5000


@dataclass
class PipelineOptions:
    resolution: int = 32
    convert: ConvertOptions = field(default_factory=ConvertOptions)
    weights_dir: Path | None = None
    repair: bool = True  # check stability and repair the layout (lego.repair)
    reinforce: bool = True  # let repair add visible props where re-tiling is not enough
    # predictions only: drop floating pieces under this fraction of the cells (0: keep all)
    drop_fragments: float = FRAGMENT_FRACTION
    # photos only: the user's help for background removal (core.preprocess): an object mask
    # (bool array or mask image file, the photo's size) and/or a crop rectangle
    # (left, top, right, bottom) around the object
    mask: np.ndarray | str | Path | None = None
    crop: tuple[int, int, int, int] | None = None
    #: the stability check and repair run only for models up to this many bricks (or where no
    #: brick overhangs: decided in linear time), and stop after ANALYSIS_BUDGET_S seconds (wall
    #: clock) of LPs; a model over either is built without it and says so in its warnings
    repair_max_bricks: int = REPAIR_MAX_BRICKS

    def validate(self) -> None:
        if not isinstance(self.convert, ConvertOptions):
            raise TypeError(
                f"options.convert must be a ConvertOptions, got {type(self.convert).__name__}"
            )
        if self.resolution not in RESOLUTIONS + (64,):
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {self.resolution!r}")
        if isinstance(self.repair_max_bricks, bool) or not isinstance(self.repair_max_bricks, int):
            raise TypeError(f"repair_max_bricks must be an int, got {self.repair_max_bricks!r}")
        if self.repair_max_bricks < 0:
            raise ValueError(f"repair_max_bricks must be >= 0, got {self.repair_max_bricks}")
        if not 0.0 <= self.drop_fragments <= 1.0:
            raise ValueError(f"drop_fragments must be in [0, 1], got {self.drop_fragments!r}")


@dataclass
class PipelineResult:
    """What a pipeline run made: the brick model and the facts about how it got there."""

    model: BrickModel
    voxels: np.ndarray  # bool [x, y, z] at the chosen resolution
    image: np.ndarray | None = None  # the 128² grayscale the network saw
    mask: np.ndarray | None = None  # its object mask
    colors: np.ndarray | None = None  # optional [x, y, z, 3] float colours per voxel
    #: the stability check and repair (None: not run, see PipelineOptions.repair and
    #: repair_max_bricks)
    stability: RepairReport | None = None
    #: photos: cells of floating fragments removed from the prediction (0: none or not a photo)
    fragments_dropped_cells: int = 0

    @property
    def reports(self) -> dict:
        """The facts as a dict (``"stability"``, ``"fragments_dropped_cells"``), for callers
        of the earlier API."""
        out: dict = {}
        if self.stability is not None:
            out["stability"] = self.stability
        if self.image is not None:
            out["fragments_dropped_cells"] = self.fragments_dropped_cells
        return out


Steps = Generator[Progress, None, PipelineResult]  # lego.progress.Steps[PipelineResult]


def load_voxel_file(path: str | os.PathLike) -> np.ndarray:
    """Read a ``.npy`` or ``.npz`` occupancy grid (``[x, y, z]``, Z up).

    Integer grids holding only 0 and 1 are accepted and converted; anything else is a
    clear ``ValueError``. An ``.npz`` must hold one array, or one named ``voxels``.
    """
    from .inputs import read_voxel_file

    return read_voxel_file(path)


def _finish(
    grid: np.ndarray, colors, options: PipelineOptions
) -> Generator[Progress, None, tuple[BrickModel, RepairReport | None]]:
    yield Progress(0.6, f"Converting {int(grid.sum())} voxels to bricks")
    model = voxels_to_bricks(grid, colors=colors, options=options.convert)
    report = None
    limit = options.repair_max_bricks
    # a model where no brick overhangs (a solid fill) is decided in linear time, at any size
    over = options.repair and limit and len(model) > limit and not fully_supported(model)
    if over:
        note = (
            f"stability not checked: {len(model)} bricks is over the repair limit of {limit} "
            "(raise repair_max_bricks / --repair-max-bricks to check it)"
        )
        model.meta.setdefault("warnings", []).append(note)
        yield Progress(0.8, note)
    elif options.repair:
        yield Progress(0.8, "Checking stability and repairing")
        typed = RepairOptions.from_convert(options.convert)
        try:
            model, report = repair(model, reinforce=options.reinforce, options=typed)
        except StabilityBudgetError as exc:
            note = f"stability not checked: {exc} (ANALYSIS_BUDGET_S = {ANALYSIS_BUDGET_S:g} s)"
            model.meta.setdefault("warnings", []).append(note)
            yield Progress(0.9, note)
        else:
            if options.convert.real_elements:
                model = _real_elements(model)
    yield Progress(0.95, f"{len(model)} bricks")
    return model, report


def _real_elements(model: BrickModel) -> BrickModel:
    """Repair's props and re-tilings in a part that does not exist in their colour take the
    nearest colour it exists in (no brick moves: the stability just shown still holds)."""
    from ..lego.elements import recolour_model

    model, n = recolour_model(model)
    if n:
        info = model.meta.get("elements") or {}
        model.meta["elements"] = {**info, "repair_recoloured": n}
    return model


def _options(options) -> PipelineOptions:
    if options is None:
        return PipelineOptions()
    if not isinstance(options, PipelineOptions):
        raise TypeError(f"options must be a PipelineOptions, got {type(options).__name__}")
    options.validate()
    return options


def voxels_to_lego_steps(
    grid: np.ndarray, options: PipelineOptions | None = None, colors=None
) -> Steps:
    """Voxel grid → bricks, as steps."""
    options = _options(options)
    yield Progress(0.0, "Checking voxels")
    grid = validate_grid(grid)
    model, report = yield from _finish(grid, colors, options)
    yield Progress(1.0, "Done")
    return PipelineResult(model=model, voxels=grid, colors=colors, stability=report)


def image_to_lego_steps(image, options: PipelineOptions | None = None) -> Steps:
    """Photo (path or PIL image) → preprocessing → TL-Octree → bricks, as steps."""
    options = _options(options)
    yield Progress(0.0, "Preprocessing the image")
    from .preprocess import preprocess_image

    mask = options.mask
    if mask is not None and not isinstance(mask, np.ndarray):
        from .preprocess import load_mask

        mask = load_mask(mask)
    pre = preprocess_image(image, mask=mask, rect=options.crop)
    yield Progress(0.2, "Loading the model")
    from .npnet import load_predictor  # numpy runtime: no torch needed (IMAGE2LEGO_BACKEND)

    predictor = load_predictor(options.weights_dir)
    yield Progress(0.35, f"Predicting voxels at {options.resolution}³")
    grids = predictor.predict(pre.image, resolutions=(options.resolution,))
    grid = grids[options.resolution]
    if not grid.any():
        raise ValueError("the model predicted an empty shape for this image")
    dropped = 0
    if options.drop_fragments > 0:
        grid, dropped = drop_fragments(grid, options.drop_fragments)
    colors = None
    if options.convert.color_mode in ("photo", "grayscale"):
        yield Progress(0.5, "Colouring the voxels from the photo")
        from .colorize import photo_colors

        colors = photo_colors(image, grid, pre)
    model, report = yield from _finish(grid, colors, options)
    yield Progress(1.0, "Done")
    return PipelineResult(
        model=model,
        voxels=grid,
        image=pre.image,
        mask=pre.mask,
        stability=report,
        fragments_dropped_cells=int(dropped),
    )

"""Voxels to a buildable brick model: the one entry point (issue 3, paper §2.4–2.6).

``voxels_to_bricks(grid, colors=None, options=None)`` runs, in order: validation, hollow
filling or shelling, colour quantisation, cropping to the occupied box, resampling to the
plate lattice (scale mode), per-layer merging with the connection pass, re-merging around
breaks, and build steps. The returned :class:`BrickModel` carries what was done in
``model.meta``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields

import numpy as np
from scipy import ndimage

from . import choices, merge, voxels
from .bricks import BrickModel
from .connectivity import label_lattice, lattice_edges
from .join import join_pieces
from .steps import DEFAULT_MAX_BRICKS_PER_STEP, defer_to_support, step_indices
from .units import PLATE_MM, STUD_MM

HOLLOW_MODES = choices.values(choices.HOLLOW)
COLOR_MODES = choices.values(choices.COLOR_MODE)


def _is_int(v) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


@dataclass
class ConvertOptions:
    """How to turn voxels into bricks.

    * ``scale``: ``"proportional"`` (a voxel is a one-stud cube; default) or ``"paper"``
      (a voxel is a 1×1 brick). See :mod:`image2lego.lego.voxels`.
    * ``brick_types``: ``"mixed"`` (bricks where three plates of one colour stack, plates
      elsewhere), ``"bricks"`` or ``"plates"``.
    * ``hollow``: ``"fill"`` (solid, the paper's choice), ``"shell"`` (walls
      ``wall_thickness`` studs thick, with internal ``supports``) or ``"none"`` (as given).
    * ``color_mode``: ``"single"`` (every brick ``color``, an LDraw code; a single RGB
      triple passed as ``colors`` is matched to the nearest LEGO colour instead),
      ``"photo"`` (k-means to ``k`` colours, each mapped to the nearest LEGO colour,
      optionally from ``palette``) or ``"grayscale"`` (LEGO greys).
    * ``seed``: makes every random choice reproducible.
    * ``max_bricks_per_step``: larger layers are split into several build steps.
    * ``join``: floating pieces of the voxels are bridged to a piece near them or stood on
      a support column (:func:`image2lego.lego.join.join_pieces`; ``meta["join"]`` says
      what was added where, ``meta["added_cells"]`` marks the lattice cells); ``False``
      builds the voxels as given.
    * ``regularise_colors``: per-voxel colours are cleaned before merging
      (:func:`image2lego.lego.colors.regularise_labels`: no isolated specks on the surface,
      regions of at least ``MIN_REGION_CELLS``, interior cells in the nearest surface
      colour); ``False`` keeps the quantised labels as they are.
    * ``real_elements``: only part × colour combinations that exist as real LEGO elements
      (:mod:`image2lego.lego.elements`): photo colours come from
      :data:`~image2lego.lego.elements.ELEMENT_PALETTE` unless a ``palette`` is given, and a
      brick whose part does not exist in its colour is split into parts that do
      (``element_strategy="split"``, falling back to the nearest colour its part exists in
      when splitting would disconnect the model) or recoloured (``"recolour"``);
      ``meta["elements"]`` says what changed. ``False`` uses any part in any colour.
    """

    scale: choices.Scale = "proportional"
    brick_types: choices.BrickTypes = "mixed"
    hollow: choices.Hollow = "fill"
    wall_thickness: int = 1
    supports: bool = True
    color_mode: choices.ColorMode = "single"
    k: int = 4
    palette: list[int] | None = None
    color: int = 71
    seed: int = 0
    max_bricks_per_step: int = DEFAULT_MAX_BRICKS_PER_STEP
    join: bool = True
    regularise_colors: bool = True
    real_elements: bool = True
    element_strategy: choices.ElementStrategy = "split"

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def from_dict(cls, data: object) -> ConvertOptions | None:
        """Options kept as a dict (``meta["options"]`` of a model stored as JSON) back as
        options; unknown keys are ignored, missing ones take the defaults, and anything that
        is not valid options (an older or tampered file) gives ``None``."""
        if not isinstance(data, dict):
            return None
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in data.items() if k in names}
        if isinstance(known.get("palette"), tuple):
            known["palette"] = list(known["palette"])
        try:
            return cls(**known)
        except (TypeError, ValueError):
            return None

    def validate(self) -> None:
        choices.check("scale", self.scale, choices.SCALE)
        choices.check("brick_types", self.brick_types, choices.BRICK_TYPES)
        choices.check("hollow", self.hollow, choices.HOLLOW)
        if not _is_int(self.wall_thickness) or self.wall_thickness < 1:
            raise ValueError(
                f"wall_thickness must be an integer >= 1 (studs), got {self.wall_thickness!r}"
            )
        choices.check("color_mode", self.color_mode, choices.COLOR_MODE)
        if not _is_int(self.k) or self.k < 1:
            raise ValueError(f"k (number of colours) must be an integer >= 1, got {self.k!r}")
        if not _is_int(self.color) or self.color < 0:
            raise ValueError(f"color must be an LDraw colour code (int >= 0), got {self.color!r}")
        if self.palette is not None:
            if not all(_is_int(c) and c >= 0 for c in self.palette) or not len(self.palette):
                raise ValueError(
                    f"palette must be a non-empty list of LDraw colour codes, got {self.palette!r}"
                )
        if not _is_int(self.seed):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not _is_int(self.max_bricks_per_step) or self.max_bricks_per_step < 1:
            raise ValueError(
                f"max_bricks_per_step must be an integer >= 1, got {self.max_bricks_per_step!r}"
            )
        if not isinstance(self.join, bool):
            raise ValueError(f"join must be True or False, got {self.join!r}")
        if not isinstance(self.real_elements, bool):
            raise ValueError(f"real_elements must be True or False, got {self.real_elements!r}")
        choices.check("element_strategy", self.element_strategy, choices.ELEMENT_STRATEGY)
        if not isinstance(self.regularise_colors, bool):
            raise ValueError(
                f"regularise_colors must be True or False, got {self.regularise_colors!r}"
            )


def _rgb01(colors, what: str) -> np.ndarray:
    a = np.asarray(colors)
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{what} must be numbers (floats 0..1 or uint8), got dtype {a.dtype}")
    if a.dtype.kind in "iu":
        raise TypeError(f"{what}: integer colours must be uint8 (0..255); got dtype {a.dtype}")
    return a.astype(np.float64)


def _check_rgb(rgb: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(rgb).all(axis=-1)
    if bad.any():
        raise ValueError(f"{what} contain NaN or infinite values at {int(bad.sum())} voxel(s)")
    if (rgb < -1e-6).any() or (rgb > 1 + 1e-6).any():
        raise ValueError(
            f"{what} must be in 0..1 (floats) or 0..255 (uint8); got range "
            f"{rgb.min():.3g}..{rgb.max():.3g}"
        )


def _quantize(rgb: np.ndarray, opts: ConvertOptions, k: int) -> np.ndarray:
    from .colors import quantize_colors  # imported lazily (scikit-learn)

    mode = "grayscale" if opts.color_mode == "grayscale" else "photo"
    palette = opts.palette
    if palette is None and opts.real_elements and mode == "photo":
        from .elements import ELEMENT_PALETTE

        palette = list(ELEMENT_PALETTE)
    return quantize_colors(np.clip(rgb, 0.0, 1.0), k, mode, palette, opts.seed)


def _voxel_codes(grid: np.ndarray, colors, opts: ConvertOptions) -> tuple[np.ndarray | int, dict]:
    """LDraw code per voxel (int array, -1 empty) or one code for all; plus colour meta."""
    info: dict = {"color_mode": opts.color_mode}
    if colors is None:
        if opts.color_mode != "single":
            raise ValueError(
                f"color_mode={opts.color_mode!r} needs per-voxel colours; pass colors=... "
                "or use color_mode='single'"
            )
        from .colors import get

        get(opts.color)  # raises ValueError naming an unknown colour code
        return int(opts.color), info
    a = np.asarray(colors)
    if a.shape == (3,):
        rgb = _rgb01(a, "colors")
        _check_rgb(rgb[None], "colors")
        code = int(_quantize(rgb[None], opts, 1)[0])
        info["from_rgb"] = rgb.tolist()
        return code, info
    if a.shape != grid.shape + (3,):
        raise ValueError(
            f"colors must be None, one RGB triple or an array of shape {grid.shape + (3,)} "
            f"(one RGB per voxel), got shape {a.shape}"
        )
    if opts.color_mode == "single":
        raise ValueError(
            "per-voxel colours were given but color_mode='single'; use color_mode='photo' "
            "or 'grayscale' (or pass one RGB triple)"
        )
    rgb = _rgb01(a, "colors")[grid]
    _check_rgb(rgb, "colors of occupied voxels")
    codes = _quantize(rgb, opts, int(opts.k))
    out = np.full(grid.shape, -1, dtype=np.int64)
    out[grid] = codes
    info["colors_used"] = sorted({int(c) for c in np.unique(codes)})
    return out, info


def _extend_codes(codes: np.ndarray, original: np.ndarray, solid: np.ndarray) -> np.ndarray:
    """Give voxels added by filling/supports the colour of the nearest original voxel."""
    added = solid & ~original
    if not added.any():
        return np.where(solid, codes, -1)
    idx = ndimage.distance_transform_edt(~original, return_distances=False, return_indices=True)
    out = np.where(solid, codes, -1)
    ax, ay, az = np.nonzero(added)
    out[ax, ay, az] = codes[idx[0, ax, ay, az], idx[1, ax, ay, az], idx[2, ax, ay, az]]
    return out


def _merge(cells: np.ndarray, opts: ConvertOptions, n_cells: int):
    """Merge; when the colours leave the bricks in more pieces than the cells, colour yields.

    The cells are then merged colour-blind (as one colour, which connects whatever the
    voxels connect), each brick takes the majority colour of its visible cells, and every
    brick that still shows a wrong colour is re-tiled in its cells' own colours wherever
    that keeps the bricks joined (:func:`merge.restore_colours`): interior cells take
    whatever colour lets bricks merge, visible ones keep theirs where they can. So a
    connected voxel set gives a connected model in every colour mode. Returns
    ``(assembly, result, strategy, recoloured_visible_cells)``.
    """
    deadline = merge.budget_clock() + CONNECT_BUDGET_S
    if len(np.unique(cells[cells >= 0])) < 2:
        asm, res, strategy = _merge_cells(cells, opts, n_cells, deadline)
        return asm, res, strategy, 0
    # When no colour-respecting tiling can be as connected as the cells, skip the try.
    if merge.colour_bound(cells) <= n_cells:
        try_end = min(deadline, merge.budget_clock() + COLOUR_TRY_BUDGET_S)
        asm, res, strategy = _merge_cells(cells, opts, n_cells, try_end)
        if res.connected:
            return asm, res, strategy, 0
    else:
        asm = res = None
    blind = np.where(cells >= 0, 0, -1)
    alt, alt_res, alt_strategy = _merge_cells(blind, opts, n_cells, deadline)
    if res is not None and alt_res.n_components >= res.n_components:
        return asm, res, strategy, 0
    merge.paint_majority(alt, cells)
    recoloured = merge.restore_colours(alt, cells)
    merge.coalesce(alt)
    return alt, alt_res, alt_strategy + "+colour-blind", recoloured


#: CPU seconds (:data:`merge.budget_clock`) the re-merge may spend joining the bricks in the
#: photo's own colours before colour yields (a colour-blind merge, then colours restored where
#: they keep it joined).
COLOUR_TRY_BUDGET_S = 2.0

#: CPU seconds all connection passes of one conversion may spend together (every candidate and
#: colour try shares it). Real shapes need well under a second (a 32³ chair 0.05 s, a 64³
#: sphere 0.15 s); a 32³ checkerboard or a 64³ random fill has thousands of breaks, each
#: needing its own re-tiling: they stop here, with a warning naming the budget.
CONNECT_BUDGET_S = 8.0


def _left(deadline: float) -> float:
    return max(0.0, deadline - merge.budget_clock())


def _merge_cells(cells: np.ndarray, opts: ConvertOptions, n_cells: int, deadline: float):
    """Merge, connect, and in mixed mode stack plates; returns (assembly, result, strategy).

    In mixed mode, when thin parts forced bricks to be demoted to plates, a second
    candidate is built from plates only (then stacked into bricks where three identical
    plates meet) and the connected candidate with fewer parts wins. Connecting stops at
    ``deadline`` (on :data:`merge.budget_clock`).
    """
    asm = merge.build(cells, opts.brick_types, opts.seed)
    res = merge.connect(asm, n_cells, opts.seed, time_budget=_left(deadline))
    if opts.brick_types != "mixed":
        merge.coalesce(asm)
        return asm, res, opts.brick_types
    merge.stack_plates(asm)
    merge.coalesce(asm)
    strategy = "mixed"
    small = int((cells >= 0).sum()) <= merge.GREEDY_CANDIDATE_MAX_MODEL
    if _left(deadline) > 0 and (res.demoted or not res.connected or (small and res.fixes)):
        alt = merge.build(cells, "plates", opts.seed)
        alt_res = merge.connect(alt, n_cells, opts.seed, time_budget=_left(deadline))
        merge.stack_plates(alt)
        merge.coalesce(alt)
        better = (not alt_res.connected, alt.n_alive) < (not res.connected, asm.n_alive)
        if better:
            asm, res, strategy = alt, alt_res, "plates+stacked"
    return asm, res, strategy


def voxels_to_bricks(grid, colors=None, options: ConvertOptions | None = None) -> BrickModel:
    """Convert a bool voxel grid ``[x, y, z]`` (Z up) into a buildable :class:`BrickModel`.

    ``colors`` is ``None`` (use ``options.color``), one RGB triple (floats 0..1 or uint8),
    or an array ``[x, y, z, 3]`` of per-voxel colours (needs ``color_mode`` ``"photo"`` or
    ``"grayscale"``). Raises ``TypeError``/``ValueError`` naming the problem for bad input.

    The model's lattice is cropped to the occupied box; ``meta["offset_voxels"]`` is the
    voxel index of the lattice's origin. ``meta`` also records the options, grid shape,
    voxel count, scale (mm per voxel), colours, connectivity and any ``warnings``; when the
    bricks cannot be made as connected as the voxels, ``meta["connected"]`` is False and a
    warning says so.
    """
    t0 = time.perf_counter()
    opts = options if options is not None else ConvertOptions()
    if not isinstance(opts, ConvertOptions):
        raise TypeError(f"options must be a ConvertOptions, got {type(opts).__name__}")
    opts.validate()
    grid = voxels.validate_grid(grid)
    warnings: list[str] = []
    codes, color_info = _voxel_codes(grid, colors, opts)
    joined, join = join_pieces(grid) if opts.join else (grid, None)

    if opts.hollow == "fill":
        solid = voxels.fill_hollow(joined)
    elif opts.hollow == "shell":
        solid = voxels.make_shell(joined, wall=opts.wall_thickness, supports=opts.supports)
    else:
        solid = joined.copy()
    if isinstance(codes, np.ndarray):
        codes = _extend_codes(codes, grid, solid)
        if opts.regularise_colors:
            from .colors import regularise_labels

            codes, changed = regularise_labels(codes)
            color_info["regularised"] = changed
    else:
        codes = np.where(solid, codes, -1)

    # crop to the occupied box
    nzs = np.nonzero(solid)
    lo = [int(a.min()) for a in nzs]
    hi = [int(a.max()) + 1 for a in nzs]
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    solid, codes = solid[box], codes[box]

    layers = voxels.to_layers(solid, opts.scale, opts.brick_types)
    cells = layers.resample(codes, solid, fill=-1)
    added_cells: list = []
    if join is not None and join.added is not None and join.added.any():
        added = layers.resample(join.added[box] & solid, solid, fill=False)
        added_cells = np.argwhere(added).tolist()
    if join is not None and join.additions:
        warnings.append(join.headline())
    t_layers = time.perf_counter()

    n_cells = merge.cell_components(layers.occ)
    asm, res, strategy, recoloured = _merge(cells, opts, n_cells)
    if not res.connected:
        budget = f"; connecting gets {CONNECT_BUDGET_S:g} s per model" if res.timed_out else ""
        warnings.append(res.message + budget)
    elements_info = None
    if opts.real_elements:
        from .elements import enforce

        # a brick that must change colour keeps to the model's colours (strictly when the
        # caller gave the palette: a k-colour face or mosaic stays in its k colours)
        used = tuple(int(c) for c in np.unique(cells[cells >= 0]))
        elements_info = enforce(asm, opts.element_strategy, used, opts.palette is not None)
        if elements_info["unavailable_left"]:
            warnings.append(
                f"{elements_info['unavailable_left']} brick(s) are parts that exist in no "
                "LEGO colour"
            )
    t_merge = time.perf_counter()

    d = asm.arrays()
    steps = step_indices(d["z"], d["x"], d["y"], d["nx"], d["ny"], opts.max_bricks_per_step)
    steps = defer_to_support(steps, d["z"], lattice_edges(label_lattice(d, cells.shape)))
    bricks = asm.to_bricks(steps)
    bricks.sort(key=lambda b: (b.step, b.z, b.y, b.x))

    n_comp, comp = asm.components()
    alive = np.asarray(asm.alive, dtype=bool)
    zs = np.asarray(asm.z)[alive]
    grounded = np.unique(comp[alive][zs == 0])
    n_ungrounded = int((~np.isin(comp[alive], grounded)).sum())
    if n_ungrounded:
        warnings.append(f"{n_ungrounded} brick(s) are not connected to the ground layer")

    mm = layers.mm_per_voxel
    lattice_mm = (
        solid.shape[0] * STUD_MM,
        solid.shape[1] * STUD_MM,
        layers.n_plates * PLATE_MM,
    )
    meta = {
        "options": asdict(opts),
        "grid_shape": tuple(int(s) for s in grid.shape),
        "offset_voxels": tuple(lo),
        "n_voxels": int(grid.sum()),
        "n_voxels_built": int(solid.sum()),
        "mm_per_voxel": tuple(float(v) for v in mm),
        "plates_per_voxel": layers.n_plates / solid.shape[2],
        "size_mm": tuple(float(v) for v in lattice_mm),
        "colors": color_info,
        "connected": bool(res.connected),
        "connectivity": {
            "n_components": int(n_comp),
            "n_cell_components": int(n_cells),
            "n_ungrounded": n_ungrounded,
            "n_links": len(asm.edges()),
            "remerge_fixes": res.fixes,
            "demoted_bricks": res.demoted,
            "strategy": strategy,
            "recoloured_visible_cells": recoloured,
            "message": res.message,
        },
        "warnings": warnings,
        "join": join.to_dict() if join is not None else None,
        "elements": elements_info,
        "added_cells": added_cells,
        "timing_s": {
            "prepare": t_layers - t0,
            "merge": t_merge - t_layers,
            "total": time.perf_counter() - t0,
        },
    }
    return BrickModel(bricks, tuple(int(s) for s in cells.shape), meta, options=opts)

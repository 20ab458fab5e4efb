"""Voxel grids before they become bricks: validation, hollow filling, shells, scale modes.

A voxel grid is a bool array ``[x, y, z]`` with Z up. This module turns it into the
*layered* lattice the merger works on: ``[x, y, plate]`` where one cell is one stud wide
and one plate (3.2 mm) tall.

Scale modes (:func:`to_layers`):

* ``"paper"`` — the paper's (and ColouredVoxels2LDR's) mapping: one voxel becomes one
  1×1 *brick* (8 × 8 × 9.6 mm), i.e. three plate layers. Objects come out 20 % taller
  than they are wide.
* ``"proportional"`` (default) — a voxel is a cube one stud (8 mm) on a side. Its height
  is 2.5 plates or 8/9.6 bricks, so the Z axis is resampled: with plates every voxel
  layer becomes 2 or 3 plate layers (alternating, 2.5 on average); with bricks only, each
  brick layer takes the voxel layers whose centres fall inside it (1 or 2, OR-pooled, so
  no voxel layer is ever dropped and 6-connectivity is kept). A sphere stays round to
  within a plate (plates) or a brick (bricks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from . import choices
from .units import BRICK_MM, PLATE_MM, PLATES_PER_BRICK, STUD_MM

#: Largest accepted grid size along any axis. 256³ voxels become up to 256×256×640 plate
#: cells (42 M) in proportional mode, about the most the merger handles in reasonable
#: time and memory (a few hundred MB); the project's networks produce at most 128³.
MAX_VOXELS_PER_AXIS = 256
#: Alias used in ARCHITECTURE.md; a per-axis limit, not a total count.
MAX_VOXELS = MAX_VOXELS_PER_AXIS

SCALES = choices.values(choices.SCALE)
BRICK_TYPES = choices.values(choices.BRICK_TYPES)


def validate_grid(grid) -> np.ndarray:
    """Check an occupancy grid and return it as a C-contiguous bool array.

    Raises ``TypeError`` when ``grid`` is not a numpy array or not of bool dtype, and
    ``ValueError`` when it is not 3-D, has an axis longer than :data:`MAX_VOXELS_PER_AXIS`
    or has no occupied voxel. A single occupied voxel is valid.
    """
    if not isinstance(grid, np.ndarray):
        raise TypeError(
            f"voxel grid must be a numpy.ndarray of bool [x, y, z], got {type(grid).__name__}"
        )
    if grid.ndim != 3:
        raise ValueError(f"voxel grid must be 3-D [x, y, z], got {grid.ndim}-D shape {grid.shape}")
    if grid.dtype != np.bool_:
        raise TypeError(
            f"voxel grid must have dtype bool, got {grid.dtype} (threshold it first, "
            "e.g. grid > 0.5)"
        )
    if max(grid.shape) > MAX_VOXELS_PER_AXIS:
        raise ValueError(
            f"voxel grid shape {grid.shape} exceeds the limit of {MAX_VOXELS_PER_AXIS} "
            "voxels per axis; downsample it first"
        )
    if not grid.any():
        raise ValueError(f"voxel grid of shape {grid.shape} is empty (no occupied voxel)")
    return np.ascontiguousarray(grid)


def fill_hollow(grid: np.ndarray) -> np.ndarray:
    """Fill every cavity not connected to the outside (the paper's "full 3D model", §2.6)."""
    return ndimage.binary_fill_holes(validate_grid(grid))


#: default of drop_fragments and of the image pipeline: pieces under 1 % of the cells are specks
#: (reconstruction noise); larger floating pieces are joined by the converter (lego.join)
FRAGMENT_FRACTION = 0.01


def drop_fragments(
    grid: np.ndarray, min_fraction: float = FRAGMENT_FRACTION
) -> tuple[np.ndarray, int]:
    """Remove the small pieces a prediction leaves floating; return ``(grid, cells_removed)``.

    Keeps the largest face-connected (6-connected) piece and every piece holding at least
    ``min_fraction`` of the occupied cells. Bricks cannot join pieces that do not touch, so a
    floating speck makes a model that cannot be built. On the validation predictions of the
    shipped model, 5 % turns 18 % multi-piece chairs into 2 % at unchanged IoU (MODEL_CARD.md).
    """
    grid = validate_grid(grid)
    if not 0.0 <= min_fraction <= 1.0:
        raise ValueError(f"min_fraction must be in [0, 1], got {min_fraction!r}")
    labels, n = ndimage.label(grid)
    if n <= 1:
        return grid, 0
    sizes = np.bincount(labels.ravel())[1:]
    keep = sizes >= min_fraction * sizes.sum()
    keep[np.argmax(sizes)] = True
    out = np.concatenate([[False], keep])[labels]
    return out, int(sizes[~keep].sum())


def _exterior_distance(filled: np.ndarray) -> np.ndarray:
    """Chessboard distance (in voxels) of each voxel to the nearest outside voxel."""
    padded = np.pad(filled, 1)
    d = ndimage.distance_transform_cdt(padded, metric="chessboard")
    return d[1:-1, 1:-1, 1:-1]


def make_shell(
    grid: np.ndarray,
    wall: int = 1,
    supports: bool = True,
    support_spacing: int = 4,
    support_size: int = 1,
) -> np.ndarray:
    """Hollow the (filled) object, keeping walls ``wall`` studs (voxels) thick.

    The wall is every voxel within chessboard distance ``wall`` of the outside, so it is
    ``wall`` thick along every axis and never thinner along a diagonal; roof and floor get
    the same thickness. With ``supports``, ``support_size``×``support_size`` columns on a
    lattice of pitch ``support_spacing`` (studs) fill the cavity wherever it lies above a
    column position, from the floor to the roof, so a large roof has something to rest on
    (the paper's hollow faces collapsed inwards, §2.6).
    """
    filled = fill_hollow(grid)
    if not isinstance(wall, (int, np.integer)) or wall < 1:
        raise ValueError(f"wall thickness must be an integer >= 1 stud, got {wall!r}")
    if support_spacing < 2 or support_size < 1 or support_size >= support_spacing:
        raise ValueError(
            f"support_spacing must be >= 2 and support_size in [1, spacing); got "
            f"spacing={support_spacing}, size={support_size}"
        )
    d = _exterior_distance(filled)
    shell = filled & (d <= wall)
    if supports:
        interior = filled & ~shell
        if interior.any():
            xs, ys, _ = np.nonzero(interior)
            # Centre the lattice on the cavity so the columns sit symmetrically.
            x0 = xs.min() + (support_spacing - support_size) // 2
            y0 = ys.min() + (support_spacing - support_size) // 2
            ix = (np.arange(grid.shape[0]) - x0) % support_spacing < support_size
            iy = (np.arange(grid.shape[1]) - y0) % support_spacing < support_size
            columns = ix[:, None, None] & iy[None, :, None]
            shell |= interior & columns
    return shell


@dataclass
class Layers:
    """A voxel grid resampled to the LEGO lattice.

    ``occ[x, y, p]`` is True where plate layer ``p`` is filled; ``src_z[p]`` is the voxel
    layer each plate layer takes its occupancy and colour from (OR-pooled layers take the
    lowest occupied one, see :meth:`resample`). ``unit`` is the height in plates of the
    layers the merger should build with: 3 when only bricks are allowed, else 1.
    ``mm_per_voxel`` is the size of one voxel in millimetres along (x, y, z).
    """

    occ: np.ndarray
    src_z: np.ndarray
    groups: list[np.ndarray]
    scale: str
    brick_types: str
    mm_per_voxel: tuple[float, float, float]

    @property
    def n_plates(self) -> int:
        return self.occ.shape[2]

    def resample(self, values: np.ndarray, grid: np.ndarray, fill=-1) -> np.ndarray:
        """Resample a per-voxel array ``[x, y, z]`` (e.g. colour codes) to plate layers.

        Each plate layer takes, per column, the value of the lowest occupied voxel among
        the voxel layers pooled into it; empty cells get ``fill``.
        """
        nx, ny, _ = grid.shape
        out = np.full((nx, ny, self.n_plates), fill, dtype=values.dtype)
        for p, g in enumerate(self.groups):
            v = np.full((nx, ny), fill, dtype=values.dtype)
            for z in g[::-1]:  # lowest occupied wins
                m = grid[:, :, z]
                v[m] = values[:, :, z][m]
            out[:, :, p] = v
        return out


def _plate_groups(nz: int, scale: str, brick_types: str) -> tuple[list[np.ndarray], int]:
    """For each output layer, the voxel layers pooled into it; and its height in plates."""
    voxel_mm = BRICK_MM if scale == "paper" else STUD_MM
    out_h = PLATES_PER_BRICK if brick_types == "bricks" else 1
    out_mm = out_h * PLATE_MM
    if out_mm <= voxel_mm + 1e-9:
        # Upsampling: each output layer samples the voxel layer under its centre.
        ratio = voxel_mm / out_mm
        n_out = int(np.ceil(nz * ratio - 0.5 - 1e-9))
        src = np.floor((np.arange(n_out) + 0.5) / ratio + 1e-9).astype(int)
        groups = [np.array([s]) for s in src]
    else:
        # Downsampling: each voxel layer goes to the output layer holding its centre.
        ratio = out_mm / voxel_mm
        dest = np.floor((np.arange(nz) + 0.5) / ratio).astype(int)
        groups = [np.nonzero(dest == b)[0] for b in range(dest.max() + 1)]
    return groups, out_h


def to_layers(grid: np.ndarray, scale: str = "proportional", brick_types: str = "mixed") -> Layers:
    """Resample a voxel grid to plate layers for the chosen scale mode and brick types.

    Returns a :class:`Layers` whose ``occ`` has shape ``(nx, ny, n_plates)``. In
    ``"bricks"`` mode every brick layer is repeated over its three plate layers, so
    ``n_plates`` is a multiple of 3.
    """
    grid = validate_grid(grid)
    choices.check("scale", scale, choices.SCALE)
    choices.check("brick_types", brick_types, choices.BRICK_TYPES)
    groups, out_h = _plate_groups(grid.shape[2], scale, brick_types)
    plate_groups = [g for g in groups for _ in range(out_h)]
    nx, ny, _ = grid.shape
    occ = np.zeros((nx, ny, len(plate_groups)), dtype=bool)
    for p, g in enumerate(plate_groups):
        occ[:, :, p] = grid[:, :, g].any(axis=2)
    src_z = np.array([g[0] for g in plate_groups])
    voxel_z_mm = BRICK_MM if scale == "paper" else STUD_MM
    return Layers(
        occ=occ,
        src_z=src_z,
        groups=plate_groups,
        scale=scale,
        brick_types=brick_types,
        mm_per_voxel=(STUD_MM, STUD_MM, voxel_z_mm),
    )

"""Training shapes in one canonical frame, their train/val split, and the on-disk cache.

Canonical frame (every grid this module returns)
-----------------------------------------------
``bool`` arrays indexed ``[x, y, z]``, shape ``(32, 32, 32)``, **Z up**, the object's **front
facing -Y** (the Blender "Front" view, camera at -Y looking +Y, sees the front), resting on
``z = 0`` and centred in x and y (bounding-box centre moved to the grid centre by a whole-voxel
shift) and **scaled so the longest side spans 24 cells** (:data:`CANON_LONGEST`, the
ModelNet convention of the paper's Table 1; :func:`normalise_set` rescales the sources that
fill the cube: ShapeNetVox32, ModelNet10 monitors, pooled beds, labelled meshes). The
ShapeNet benchmark converts back to ShapeNet's own convention (:func:`to_shapenet_frame`).

Findings per source (measured from occupancy profiles and slices, see ``tests/test_data.py``):

* ``modelnet40_chair_train_vox30.npz`` (888 models x 12 rotations, 30^3, padded by 1 -> 32^3).
  Axis 2 is up: its mean profile starts at index 3 with ~26 voxels per slice (four legs), peaks
  at 14-15 (the seat, ~100 per slice) and tapers through the backrest; axes 0 and 1 are not
  bottom-heavy. The 12 rotations turn the chair about Z in +30 degree steps (counter-clockwise
  seen from above): the centre of mass of the upper part (the backrest) lies at azimuth
  ``30 * (rotation - 1)`` degrees from +X, in 888/888 medians exactly on the 30-degree grid.
  So rotation 1 faces -X (backrest at +X), and **rotation 4 is the canonical one** (backrest at
  +Y, the sitter faces -Y): ``CHAIR_CANONICAL_ROTATION``. All 12 rotations are kept as data,
  as stored (only padded, grounded and centred); ``rotation`` records which one it is.
  The 3D ShapeNets grids are already solid (3D hole filling adds 0 voxels).
* ``modelnet10_monitor_train_vox32.npz`` (465, 32^3). Axis 2 is up (stand and base at low
  index, base plate at z = 0..1), axis 1 is the screen width (fills 0..31), axis 0 the depth
  (9..22): the flat screen face is at low axis-0, the stand foot and the CRT back bulge towards
  +axis-0, so the screen faces -X. Rotated +90 degrees about Z (``np.rot90(v, 1, (0, 1))``,
  (x, y) -> (-y, x)) so it faces -Y. The binvox grids are surface shells (CRT boxes are hollow):
  3D hole filling adds a median 30%, so they are filled to be solid like everything else.
* ``modelnet10_bed_vox64.npz`` (614, 64^3). Axis 2 is up (beds are flat: median height 26 of 64
  voxels, length 64 along axis 1, width 48 along axis 0); the headboard (the tallest part, the
  peak of the axis-1 profile at 61..63) is at +Y, so beds already face -Y; no rotation. Reduced
  to 32^3 by 2x2x2 block pooling with a fill-fraction threshold of 2/8 (``BED_POOL_THRESHOLD``),
  measured on all 614 beds against the 64^3 originals: threshold 1/8 -> upsampled IoU 0.851,
  covers 100.0% of original voxels, same component count in 91% of models; 2/8 -> 0.855,
  99.9%, 92%; 3/8 -> 0.870, 98.8%, 83%; 4/8 -> 0.871, 98.7%, 85%; 5/8 -> 0.855, 87.2%, 68%.
  2/8 keeps thin parts (legs, headboard rails) without the bloat of "any voxel".

* ``infomr_meshes.tar.xz`` (1,860 OBJ meshes, 65 classes), extracted once into
  ``$IMAGE2LEGO_CACHE/infomr``. Two sources with different conventions (found from per-class
  bounding-box statistics and contact sheets of orthographic silhouettes):

  - ``m<id>.obj`` (899, Princeton Shape Benchmark, scaled to 0.95): source **+Y is up** for
    the great majority (chairs are tallest along y in 34/34, chess pieces 15/19, bottles 7/8,
    doors 17/20; tables stand on their legs), except that many jets/biplanes stand on their
    tails. Rule: +Y up; flat vehicles (jet, biplane, monoplane, car, starship) use "thin".
  - ``D<id>.obj`` (961, the second labelled source): no single convention. Many are
    PCA-aligned (longest side on x, random sign: bottles, rockets, floor lamps and skyscrapers
    lie along +-x), others are z-up (cars, beds, trains, pianos, birds) or y-up (bicycles,
    motorcycles, guns, shelves), a few are tilted. Rule per class (``_D_RULES``): "z" by
    default; "y"; "long" (the longest bounding-box side is vertical) for bottles, cups, mugs,
    lamps, rockets, skyscrapers, chess pieces, doors, violins; "thin" (shortest side vertical,
    i.e. lying flat) for phones, keyboards, guitars, knives, spoons, swords, tools.
  - "long"/"thin" need a sign: the end with the larger contact patch (convex hull of surface
    points within 3% of that end) is the base (``_support_sign``).

  Measured: a generic learned upright classifier (gradient boosting on contact-patch,
  stability, mass-profile and normal features over the 6 PCA directions) reached only 41%
  (classes held out) / 56% (random split) on the PSB part, and the support heuristic alone
  25%, so per-class rules were used instead. Checked by eye on a random sample of 80 aligned
  meshes: 64/80 (80%) upright before the flat-vehicle rule (failures: PSB jets/biplanes on
  their tails, lying mugs/cups/drums, tilted D monitors/motorcycles, quadrupeds on their side);
  with it, 44/48 random jets/biplanes/monoplanes/cars/starships were upright. Facing is not
  known for meshes: after Z is up they are turned so the longer horizontal side runs along X.
  Each mesh is scaled so its longest side spans the whole 32-voxel grid, centred in x/y,
  grounded, and voxelized solid (:func:`voxelize_mesh`: surface voxels from dense surface
  samples, then scipy hole filling; see :func:`solid_fill` for the measurement). The 4x4
  raw-mesh -> grid transform of each row is kept (``mesh_transform``) so the renderer draws
  the mesh exactly where its voxels are. The full build took 41 min wall (about 0.4 s CPU
  per mesh) on the shared 2-core machine under a training run's load.

Handedness cannot be checked on mirror-symmetric sets; grids are treated as right-handed
``[x, y, z]`` as stored.

Split: whole models, never rotations. Per (source, label) group the sorted model ids are
permuted with ``np.random.default_rng([SPLIT_SEED, crc32(source/label)])`` and the first
``ceil(10%)`` go to ``"val"``; all 12 rotations of a validation chair are in ``"val"``.

Cache (``python -m image2lego.training.data build``): ``$IMAGE2LEGO_CACHE/voxels32.npz`` with
``voxels`` (N, 32, 32, 4) uint8 bit-packed along the last axis, and per row ``label``,
``source``, ``model_id``, ``rotation`` (1..12 for chairs, else 0), ``split`` and ``mesh_path``
(relative to the cache folder, "" for voxel-only rows). ``load_voxels`` reads it back.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..core.paths import cache_dir, data_dir
from ..lego.fileio import atomic_path

RES = 32
CACHE_FILE = "voxels32.npz"
VIEWS_FILE = "views128.npz"
CACHE_VERSION = 1
SPLIT_SEED = 20240531
VAL_FRACTION = 0.10
CHAIR_CANONICAL_ROTATION = 4
BED_POOL_THRESHOLD = 2

CHAIR_FILE = "modelnet40_chair_train_vox30.npz"
MONITOR_FILE = "modelnet10_monitor_train_vox32.npz"
BED_FILE = "modelnet10_bed_vox64.npz"


# --------------------------------------------------------------------------- grid helpers


def unpack(packed: np.ndarray, n: int) -> np.ndarray:
    """Unpack bits along the last axis and keep the first ``n``."""
    return np.unpackbits(packed, axis=-1)[..., :n].astype(bool)


def pack(grids: np.ndarray) -> np.ndarray:
    """Bit-pack bool grids along the last axis (inverse of :func:`unpack`)."""
    return np.packbits(np.asarray(grids, dtype=bool), axis=-1)


def _read_source(path: Path, limit: int | None = None) -> tuple[np.ndarray, dict]:
    if not path.is_file():
        raise FileNotFoundError(f"{path.name} is missing from the shared data folder {path.parent}")
    with np.load(path) as d:
        shape = tuple(int(s) for s in d["shape"])
        if limit is not None:
            shape = (min(limit, shape[0]), *shape[1:])
        grids = unpack(d["voxels"][: shape[0]], shape[-1])
        extra = {k: d[k] for k in d.files if k not in ("voxels", "shape")}
    if grids.shape != shape:
        raise ValueError(f"{path.name}: voxels unpack to {grids.shape}, header says {shape}")
    return grids, extra


def pool2(grids: np.ndarray, threshold: int = BED_POOL_THRESHOLD) -> np.ndarray:
    """Halve the resolution: a 2x2x2 block is filled when at least ``threshold`` of 8 are."""
    g = np.asarray(grids, dtype=bool)
    *lead, a, b, c = g.shape
    if a % 2 or b % 2 or c % 2:
        raise ValueError(f"pool2 needs even grid sides, got {g.shape[-3:]}")
    blocks = g.reshape(*lead, a // 2, 2, b // 2, 2, c // 2, 2).sum(axis=(-5, -3, -1))
    return blocks >= threshold


def canonicalize(grid: np.ndarray, res: int = RES) -> np.ndarray:
    """Ground (min z -> 0) and centre in x, y by a whole-voxel shift; pad/crop to ``res``^3.

    The object's size is never changed; a grid larger than ``res`` along an axis is an error.
    """
    g = np.asarray(grid, dtype=bool)
    if g.ndim != 3:
        raise ValueError(f"expected a 3D grid, got shape {g.shape}")
    out = np.zeros((res, res, res), dtype=bool)
    if not g.any():
        return out
    idx = np.nonzero(g)
    lo = np.array([i.min() for i in idx])
    hi = np.array([i.max() for i in idx]) + 1
    size = hi - lo
    if (size > res).any():
        raise ValueError(f"object of size {tuple(size)} does not fit a {res}^3 grid")
    start = np.array([(res - size[0]) // 2, (res - size[1]) // 2, 0])
    out[
        start[0] : start[0] + size[0],
        start[1] : start[1] + size[1],
        start[2] : start[2] + size[2],
    ] = g[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    return out


def fill_solid(grid: np.ndarray) -> np.ndarray:
    """Fill enclosed cavities (3D hole filling from scipy)."""
    return ndimage.binary_fill_holes(np.asarray(grid, dtype=bool))


# One size convention for every training and validation grid: a framed photo hides absolute
# size, so the network must never see one class at two sizes. The longest side of every
# object spans CANON_LONGEST cells (the 3D ShapeNets / ModelNet convention of the paper's
# Table 1: 24 of 30, padded to 32). Measured before this rule (``learn13`` cache, median
# longest side): ModelNet40 chairs 24, airplanes 25, ModelNet10 classes 24, but ModelNet10
# monitors 32, pooled beds 32, every ShapeNetVox32 class 32 and the labelled meshes 32.
CANON_LONGEST = 24
SIZE_TOLERANCE = 1  # a longest side within +-1 cell of CANON_LONGEST is left as it is
# area-resampling thresholds (share of an output cell's footprint occupied), chosen on 195
# ShapeNet models by the 32 -> 24 -> 32 round trip (mean IoU with the original): down 0.3 /
# up 0.5 -> 0.745 (trilinear resampling, best pair 0.740); thin parts vanish with a higher
# down threshold. That round trip is the ceiling of the ShapeNet benchmark in ShapeNet's frame
DOWN_THRESHOLD = 0.3
UP_THRESHOLD = 0.5
SHAPENET_LONGEST = 32  # ShapeNetVox32: longest side spans the cube, bounding box centred


def _crop(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    nz = np.nonzero(grid)
    lo = np.array([a.min() for a in nz])
    hi = np.array([a.max() + 1 for a in nz])
    return grid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], lo


def rescale_grid(grid: np.ndarray, factor: float, threshold: float = 0.5) -> np.ndarray:
    """The object (its bounding box, cropped) resampled by ``factor`` by area: each output
    cell is kept when at least ``threshold`` of its footprint (4³ samples, nearest source
    cell) is occupied, so a box of n cells becomes exactly round(n * factor). Returns the
    cropped result (never empty for a non-empty input: the fullest cell is kept)."""
    g = np.asarray(grid, dtype=bool)
    if g.ndim != 3 or not g.any():
        raise ValueError(f"rescale_grid needs a non-empty 3D grid, got shape {g.shape}")
    if not (np.isfinite(factor) and 0.05 <= factor <= 20):
        raise ValueError(f"scale factor must be in 0.05..20, got {factor!r}")
    c, _ = _crop(g)
    k = 4
    for axis, n in enumerate(c.shape):
        m = max(1, round(n * factor))
        # sample positions (in source cells) of k sub-samples per output cell along this axis
        u = (np.arange(m * k) + 0.5) / (m * k) * n
        idx = np.clip(np.floor(u).astype(np.int64), 0, n - 1)
        c = np.take(c, idx, axis=axis)
    shape = c.shape
    occ = c.reshape(shape[0] // k, k, shape[1] // k, k, shape[2] // k, k).mean(axis=(1, 3, 5))
    out = occ >= threshold
    if not out.any():
        out = occ >= occ.max()
    return _crop(out)[0]


def normalise_size(
    grid: np.ndarray, longest: int = CANON_LONGEST, res: int = RES
) -> tuple[np.ndarray, float]:
    """``(grid, factor)``: the object scaled so its longest side spans ``longest`` cells (left
    as it is within :data:`SIZE_TOLERANCE`), then grounded and centred
    (:func:`canonicalize`). ``factor`` is the scale applied (1.0 when unchanged)."""
    g = np.asarray(grid, dtype=bool)
    if not g.any():
        return canonicalize(g, res), 1.0
    c, _ = _crop(g)
    size = max(c.shape)
    if abs(size - longest) <= SIZE_TOLERANCE:
        return canonicalize(c, res), 1.0
    f = longest / size
    return canonicalize(rescale_grid(c, f, DOWN_THRESHOLD if f < 1 else UP_THRESHOLD), res), f


def to_shapenet_frame(grid: np.ndarray, longest: int = CANON_LONGEST, res: int = RES) -> np.ndarray:
    """A grid of our canonical frame (axes already ShapeNet's turned into ours) -> the
    ShapeNetVox32 size convention, for IoU against the original ShapeNet voxels: scaled by the
    fixed factor ``SHAPENET_LONGEST / longest`` (the conversion of the two conventions, never
    fitted to the grid's own size) and its bounding box centred in all three axes, as
    ShapeNetVox32 places every model (measured: centre 16.0 in x, y and z for every class).
    An empty grid stays empty."""
    g = np.asarray(grid, dtype=bool)
    out = np.zeros((res, res, res), dtype=bool)
    if not g.any():
        return out
    c = rescale_grid(g, SHAPENET_LONGEST / longest, UP_THRESHOLD)
    s = np.minimum(np.array(c.shape), res)
    lo = (np.array(c.shape) - s) // 2
    c = c[lo[0] : lo[0] + s[0], lo[1] : lo[1] + s[1], lo[2] : lo[2] + s[2]]
    st = (res - s) // 2
    out[st[0] : st[0] + s[0], st[1] : st[1] + s[1], st[2] : st[2] + s[2]] = c
    return out


def shapenet_native(grid: np.ndarray) -> np.ndarray:
    """A raw ShapeNetVox32 grid in our axes, at ShapeNet's own size and placement (the
    benchmark's ground truth; :func:`load_shapenet` rows are normalised to our size)."""
    return shapenet_to_canonical(grid)


# --------------------------------------------------------------------------- sources


@dataclass
class VoxelSet:
    """Grids in the canonical frame plus one metadata entry per grid."""

    voxels: np.ndarray  # (N, 32, 32, 32) bool
    label: np.ndarray  # (N,) str
    source: np.ndarray  # (N,) str
    model_id: np.ndarray  # (N,) str
    rotation: np.ndarray  # (N,) int, 1..12 for chairs, else 0
    split: np.ndarray  # (N,) "train" | "val"
    mesh_path: np.ndarray  # (N,) str, relative to the cache folder, "" for voxel-only rows
    # (N, 4, 4) float32: raw mesh coordinates -> grid coordinates (voxel [i, j, k] spans
    # [i, i+1) x [j, j+1) x [k, k+1)); all zeros for voxel-only rows
    mesh_transform: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.mesh_transform is None:
            self.mesh_transform = np.zeros((len(self.voxels), 4, 4), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.voxels)

    def subset(self, mask: np.ndarray) -> VoxelSet:
        return VoxelSet(
            self.voxels[mask],
            self.label[mask],
            self.source[mask],
            self.model_id[mask],
            self.rotation[mask],
            self.split[mask],
            self.mesh_path[mask],
            self.mesh_transform[mask],
        )

    def counts(self) -> dict[str, dict[str, int]]:
        """``{label: {split: n}}``."""
        out: dict[str, dict[str, int]] = {}
        for (lab, sp), n in Counter(
            zip(self.label.tolist(), self.split.tolist(), strict=True)
        ).items():
            out.setdefault(lab, {})[sp] = n
        return dict(sorted(out.items()))


def _make_set(
    voxels: np.ndarray,
    label: Sequence[str],
    source: Sequence[str],
    model_id: Sequence[str],
    rotation: Sequence[int],
    mesh_path: Sequence[str] | None = None,
) -> VoxelSet:
    n = len(voxels)
    return VoxelSet(
        np.asarray(voxels, dtype=bool),
        np.asarray(label, dtype=str),
        np.asarray(source, dtype=str),
        np.asarray(model_id, dtype=str),
        np.asarray(rotation, dtype=np.int16),
        np.full(n, "train", dtype="<U5"),
        np.asarray(mesh_path if mesh_path is not None else [""] * n, dtype=str),
    )


def load_chairs(data: str | Path | None = None, limit: int | None = None) -> VoxelSet:
    """ModelNet40 chairs, all 888 (or the first ``limit``) x 12 rotations, canonical frame."""
    grids, extra = _read_source(data_dir(data) / CHAIR_FILE, limit)
    names = [str(s) for s in extra["names"]][: len(grids)]
    rots = [int(r) for r in extra["rotations"]]
    n, r = grids.shape[:2]
    out = np.empty((n * r, RES, RES, RES), dtype=bool)
    for i in range(n):
        for j in range(r):
            out[i * r + j] = canonicalize(grids[i, j])
    return _make_set(
        out,
        ["chair"] * (n * r),
        ["modelnet40"] * (n * r),
        [nm for nm in names for _ in range(r)],
        rots * n,
    )


def load_monitors(data: str | Path | None = None, limit: int | None = None) -> VoxelSet:
    """ModelNet10 monitors, turned to face -Y, filled solid."""
    grids, _ = _read_source(data_dir(data) / MONITOR_FILE, limit)
    out = np.stack([canonicalize(fill_solid(np.rot90(g, 1, axes=(0, 1)))) for g in grids])
    n = len(out)
    return _make_set(
        out, ["monitor"] * n, ["modelnet10"] * n, [f"monitor_{i:04d}" for i in range(n)], [0] * n
    )


def load_beds(data: str | Path | None = None, limit: int | None = None) -> VoxelSet:
    """ModelNet10 beds, pooled 64^3 -> 32^3 (threshold 2/8), already facing -Y."""
    grids, _ = _read_source(data_dir(data) / BED_FILE, limit)
    out = np.stack([canonicalize(fill_solid(pool2(g))) for g in grids])
    n = len(out)
    return _make_set(
        out, ["bed"] * n, ["modelnet10"] * n, [f"bed_{i:04d}" for i in range(n)], [0] * n
    )


SHAPENET_FILE = "shapenetvox32_train.npz"
MODELNET10_FILE = "modelnet10_train_vox30.npz"
AIRPLANE40_FILE = "modelnet40_airplane_train_vox30.npz"
SHAPENET_CLASSES = (
    "airplane", "bench", "cabinet", "car", "chair", "display", "lamp",
    "loudspeaker", "rifle", "sofa", "table", "telephone", "watercraft",
)  # fmt: skip
# ModelNet10 classes already in the cache from their own files (the same models: the chairs
# are the ModelNet40 chairs, the monitors the 465 of the monitor file, and the 515 beds are
# among the 614 of the bed file), left out so no model sits in two rows (or in both splits)
MODELNET10_DUPLICATES = ("bed", "chair", "monitor")
# ModelNet10 classes whose front is known from their shape and already faces -Y (the tank of
# a toilet, the tallest part, is at +Y); every other class has its long side along Y and is
# turned a quarter (as the monitors: front -X -> -Y; the sofas' backs are at +X)
MODELNET10_FACING_Y = ("toilet",)


def shapenet_to_canonical(grid: np.ndarray) -> np.ndarray:
    """ShapeNetVox32 (binvox ``fix_coords`` order, **Y up**, front +X) -> our frame
    ``[x, y, z]`` Z up, front -Y: new x = -old z, new y = -old x, new z = old y (a proper
    rotation, det +1). Measured (``tests/test_data.py``): axis 1 holds the height of every
    class (chairs 32 tall, cars 10 and airplanes 9.5 cells of 32), and the backrest of the
    chairs lies at -X (median centre-of-mass offset of their top 30 % -4.7 cells along axis 0,
    0.0 along axis 2), so a chair faces +X. The whole set shares one frame: in ours the cars
    and the airplane fuselages run along Y, and the tail fins (the top 15 % of an airplane)
    sit at +Y in 87 % of the 3,236 airplanes: noses point -Y, to the front like the chairs."""
    g = np.asarray(grid, dtype=bool)
    return np.ascontiguousarray(np.transpose(g, (2, 0, 1))[::-1, ::-1, :])


def airplane40_to_canonical(grid: np.ndarray) -> np.ndarray:
    """ModelNet40 airplane voxels (**Y up**, fuselage along axis 2, nose mostly at -axis 2)
    -> Z up, nose -Y like the ShapeNet airplanes: new x = -old x, new y = old z, new z = old y
    (det +1). The source is less consistently aligned than ShapeNet: after this turn the tail
    fin is at +Y in 71 % of the models (ShapeNet: 87 %)."""
    g = np.asarray(grid, dtype=bool)
    return np.ascontiguousarray(np.transpose(g, (0, 2, 1))[::-1, :, :])


def load_shapenet(
    data: str | Path | None = None,
    limit: int | None = None,
    classes: Sequence[str] | None = None,
) -> VoxelSet:
    """ShapeNetVox32 (13 classes, 3D-R2N2 voxels), canonical axes, native size (the source
    scales every model so its longest side spans the 32^3 cube; :func:`build_voxel_cache`
    brings it to :data:`CANON_LONGEST` with every other set, and the benchmark scores in
    ShapeNet's own convention, :func:`to_shapenet_frame`). ``limit``: the first N rows of each
    class (for tests)."""
    path = data_dir(data) / SHAPENET_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path.name} is missing from the shared data folder {path.parent}")
    with np.load(path) as d:
        cls = d["classes"].astype(str)
        ids = d["ids"].astype(str)
        keep = np.ones(len(cls), dtype=bool)
        if classes is not None:
            keep &= np.isin(cls, list(classes))
        if limit is not None:
            rank = np.zeros(len(cls), dtype=np.int64)
            for c in np.unique(cls):
                m = cls == c
                rank[m] = np.arange(int(m.sum()))
            keep &= rank < limit
        rows = np.flatnonzero(keep)
        packed = d["voxels"][rows]
        n = int(d["shape"][-1])
    out = np.empty((len(rows), RES, RES, RES), dtype=bool)
    for i in range(len(rows)):
        out[i] = canonicalize(shapenet_to_canonical(unpack(packed[i], n)))
    m = len(rows)
    return _make_set(out, cls[rows], ["shapenet"] * m, ids[rows], [0] * m)


def load_modelnet10(data: str | Path | None = None, limit: int | None = None) -> VoxelSet:
    """ModelNet10 train split, the classes not already in the cache (bathtub, desk, dresser,
    night_stand, sofa, table, toilet): axis 2 is up (measured: tables' profile peaks at the
    top, beds/sofas/bathtubs are flat along it), long side along Y; turned to face -Y (see
    :data:`MODELNET10_FACING_Y`), filled solid (the binvox shells), native size (24 cells,
    like the chairs). Empty grids (7 in the file) are dropped."""
    grids, extra = _read_source(data_dir(data) / MODELNET10_FILE)
    cls = extra["classes"].astype(str)
    keep = ~np.isin(cls, MODELNET10_DUPLICATES) & grids.any(axis=(1, 2, 3))
    rows = np.flatnonzero(keep)
    if limit is not None:
        rows = np.concatenate([rows[cls[rows] == c][:limit] for c in np.unique(cls[rows])])
    out = np.empty((len(rows), RES, RES, RES), dtype=bool)
    for i, r in enumerate(rows):
        g = grids[r] if cls[r] in MODELNET10_FACING_Y else np.rot90(grids[r], 1, axes=(0, 1))
        out[i] = canonicalize(fill_solid(g))
    m = len(rows)
    # ids: class + index within the class in the file (the official train order)
    within = {c: np.flatnonzero(cls == c) for c in np.unique(cls)}
    mid = [f"{cls[r]}_{int(np.searchsorted(within[cls[r]], r)) + 1:04d}" for r in rows]
    return _make_set(out, cls[rows], ["modelnet10"] * m, mid, [0] * m)


def load_airplanes40(data: str | Path | None = None, limit: int | None = None) -> VoxelSet:
    """ModelNet40 airplanes (train split, 626), canonical frame, native size (24 cells)."""
    grids, extra = _read_source(data_dir(data) / AIRPLANE40_FILE, limit)
    names = [str(s) for s in extra["names"]][: len(grids)]
    keep = [i for i in range(len(grids)) if grids[i].any()]
    out = np.stack([canonicalize(fill_solid(airplane40_to_canonical(grids[i]))) for i in keep])
    m = len(keep)
    return _make_set(out, ["airplane"] * m, ["modelnet40"] * m, [names[i] for i in keep], [0] * m)


def normalise_set(vs: VoxelSet, longest: int = CANON_LONGEST) -> VoxelSet:
    """Every row to the one size convention (:func:`normalise_size`), in place; a mesh row's
    ``mesh_transform`` is composed with the same scale and shift (to within half a cell), so
    its renders stay where its voxels are. Row order never changes, so rendered views of the
    same cache stay aligned."""
    for i in range(len(vs)):
        g = vs.voxels[i]
        if not g.any():
            continue
        lo_old = np.array([a.min() for a in np.nonzero(g)], dtype=np.float64)
        new, f = normalise_size(g, longest)
        vs.voxels[i] = new
        tf = vs.mesh_transform[i]
        if f != 1.0 and tf.any():
            lo_new = np.array([a.min() for a in np.nonzero(new)], dtype=np.float64)
            step = np.eye(4)
            step[:3, :3] *= f
            step[:3, 3] = lo_new - f * lo_old
            vs.mesh_transform[i] = (step @ tf.astype(np.float64)).astype(np.float32)
    return vs


def concat(sets: Iterable[VoxelSet]) -> VoxelSet:
    sets = list(sets)
    return VoxelSet(*(np.concatenate([getattr(s, f) for s in sets]) for f in _FIELDS))


_FIELDS = (
    "voxels",
    "label",
    "source",
    "model_id",
    "rotation",
    "split",
    "mesh_path",
    "mesh_transform",
)


def assign_split(vs: VoxelSet, val_fraction: float = VAL_FRACTION, seed: int = SPLIT_SEED) -> None:
    """Set ``vs.split`` in place: whole models to "val", per (source, label) group, seeded."""
    split = np.full(len(vs), "train", dtype="<U5")
    for src, lab in sorted(set(zip(vs.source.tolist(), vs.label.tolist(), strict=True))):
        in_group = (vs.source == src) & (vs.label == lab)
        ids = np.unique(vs.model_id[in_group])
        rng = np.random.default_rng([seed, zlib.crc32(f"{src}/{lab}".encode())])
        n_val = math.ceil(val_fraction * len(ids)) if len(ids) > 1 else 0
        val_ids = ids[rng.permutation(len(ids))[:n_val]]
        split[in_group & np.isin(vs.model_id, val_ids)] = "val"
    vs.split = split


# --------------------------------------------------------------------------- meshes

MESH_ARCHIVE = "infomr_meshes.tar.xz"
MESH_DIR = "infomr"
_MESH_SAMPLES = 4000

# Up-axis rules for the labelled meshes (see the module docstring for how they were found).
# "y" / "z": that source axis points up. "long" / "thin": the longest / shortest side of the
# axis-aligned bounding box is vertical, its sign chosen by the support rule (_support_sign).
_PSB_RULE = "y"
# flat vehicles: the thinnest side is the height in both sources (PSB jets often stand on
# their tails in the source's y-up frame)
_FLAT = dict.fromkeys(["Jet", "Biplane", "Monoplane", "Car", "Starship"], "thin")
_D_RULES = {
    **dict.fromkeys(
        ["Bottle", "Chess", "Cup", "DeskLamp", "Door", "FloorLamp", "Mug", "Rocket"], "long"
    ),
    **dict.fromkeys(["Skyscraper", "Violin"], "long"),
    **dict.fromkeys(
        ["Cellphone", "ComputerKeyboard", "Guitar", "Knife", "Spoon", "Sword", "Tool"], "thin"
    ),
    **dict.fromkeys(["Bicycle", "Gun", "Motorcycle", "Shelf", "SubmachineGun"], "y"),
}
_D_DEFAULT = "z"

# proper rotations taking the given source direction to +Z
_TO_Z = {
    (0, 1): np.array([[0, 0, -1], [0, 1, 0], [1, 0, 0]], float),  # +x up
    (0, -1): np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]], float),  # -x up
    (1, 1): np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], float),  # +y up
    (1, -1): np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], float),  # -y up
    (2, 1): np.eye(3),  # +z up
    (2, -1): np.array([[1, 0, 0], [0, -1, 0], [0, 0, -1]], float),  # -z up
}


def _as_mesh(mesh_or_path):
    import trimesh  # optional dependency (the "train" extra)

    if isinstance(mesh_or_path, trimesh.Trimesh):
        return mesh_or_path
    p = Path(mesh_or_path)
    if not p.is_file():
        raise FileNotFoundError(f"mesh file {p} not found")
    m = trimesh.load(p, force="mesh", process=False)
    if not isinstance(m, trimesh.Trimesh) or len(m.faces) == 0:
        raise ValueError(f"{p} holds no triangles")
    return m


def mesh_source(path: str | Path) -> str:
    """``"psb"`` for Princeton Shape Benchmark files (``m<id>.obj``), else ``"infomr"``."""
    return "psb" if Path(path).name.startswith("m") else "infomr"


def up_rule(label: str, source: str) -> str:
    """The up-axis rule used for a labelled mesh class from a given source."""
    if label in _FLAT:
        return _FLAT[label]
    return _PSB_RULE if source == "psb" else _D_RULES.get(label, _D_DEFAULT)


def _hull_area(p2: np.ndarray) -> float:
    from scipy.spatial import ConvexHull, QhullError

    if len(p2) < 3:
        return 0.0
    try:
        return float(ConvexHull(p2).volume)
    except (QhullError, ValueError):
        return 0.0


def _support_sign(points: np.ndarray, axis: int, band: float = 0.03) -> int:
    """+1 or -1: which end of ``axis`` the object stands on.

    The end whose contact patch (convex hull of the surface points within ``band`` of the end,
    projected on the floor) is larger is the base; ties go to the end nearer the centre of mass.
    """
    h = points[:, axis]
    lo, hi = h.min(), h.max()
    span = max(hi - lo, 1e-12)
    other = [i for i in range(3) if i != axis]
    a_lo = _hull_area(points[h <= lo + band * span][:, other])
    a_hi = _hull_area(points[h >= hi - band * span][:, other])
    if abs(a_lo - a_hi) > 0.1 * max(a_lo, a_hi, 1e-12):
        return 1 if a_lo > a_hi else -1
    return 1 if h.mean() - lo <= hi - h.mean() else -1


def align_mesh_rotation(mesh_or_path, rule: str) -> np.ndarray:
    """3x3 proper rotation taking a mesh to Z up by ``rule`` ("x", "y", "z", "long", "thin")
    and then turning it about Z so the longer horizontal side runs along X."""
    import trimesh

    m = _as_mesh(mesh_or_path)
    pts, _ = trimesh.sample.sample_surface(m, _MESH_SAMPLES, seed=0)
    if rule in ("x", "y", "z"):
        r = _TO_Z[("xyz".index(rule), 1)]
    elif rule in ("long", "thin"):
        ext = pts.max(0) - pts.min(0)
        axis = int(np.argmax(ext) if rule == "long" else np.argmin(ext))
        r = _TO_Z[(axis, _support_sign(pts, axis))]
    else:
        raise ValueError(f"unknown up-axis rule {rule!r}")
    q = pts @ r.T
    ext = q.max(0) - q.min(0)
    if ext[1] > ext[0]:  # quarter turn about Z: (x, y) -> (y, -x)
        r = np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1]], float) @ r
    return r


def grid_transform(mesh_or_path, rotation: np.ndarray | None = None, res: int = RES) -> np.ndarray:
    """4x4 affine: rotate, then scale the longest side to ``res`` voxels, centre x/y, ground z."""
    m = _as_mesh(mesh_or_path)
    r = np.eye(3) if rotation is None else np.asarray(rotation, float)
    v = m.vertices @ r.T
    lo, hi = v.min(0), v.max(0)
    size = float((hi - lo).max())
    if not np.isfinite(size) or size <= 0:
        raise ValueError("mesh has zero size")
    s = res * (1 - 1e-6) / size
    centre = (lo + hi) / 2
    t = np.array([res / 2 - s * centre[0], res / 2 - s * centre[1], -s * lo[2]])
    out = np.eye(4)
    out[:3, :3] = s * r
    out[:3, 3] = t
    return out


def _surface_voxels(vertices: np.ndarray, faces: np.ndarray, res: int) -> np.ndarray:
    """Voxels touched by the surface: dense area-weighted samples (16 per voxel face area,
    seeded) plus every vertex. Measured ~20x faster than trimesh's subdivide voxelizer on the
    shared meshes (its worst cases took 40 s per mesh), with the same cells on closed shells
    up to sampling of slivers."""
    import trimesh

    tri = vertices[faces]
    area = float(trimesh.triangles.area(tri).sum())
    n = int(np.clip(16 * area, 20_000, 400_000))
    m = trimesh.Trimesh(vertices, faces, process=False)
    pts, _ = trimesh.sample.sample_surface(m, n, seed=0)
    pts = np.concatenate([pts, vertices])
    idx = np.clip(np.floor(pts).astype(np.int64), 0, res - 1)
    g = np.zeros((res, res, res), dtype=bool)
    g[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    return g


def solid_fill(surface: np.ndarray) -> np.ndarray:
    """Fill a voxel shell solid (scipy ``binary_fill_holes``, as trimesh's ``fill``).

    The shell comes from the surface samples, not from the mesh's own topology, so the
    meshes' missing watertightness (all but ~5% of the shared meshes are open) rarely leaks
    at 32^3: on a random sample of 40, filling added a median 10% of voxels. A stricter rule
    (inside = blocked by the shell in all six axis directions) changed 1/40 grids by more than
    5%, and that one was an over-fill (the space between a desk lamp's shade and its foot),
    so the plain fill is kept.
    """
    return ndimage.binary_fill_holes(np.asarray(surface, dtype=bool))


def voxelize_mesh(
    mesh_or_path,
    resolution: int = RES,
    *,
    transform: np.ndarray | None = None,
    rotation: np.ndarray | None = None,
    up: str | None = None,
    solid: bool = True,
) -> np.ndarray:
    """A mesh (``trimesh.Trimesh`` or file path) -> bool grid ``[x, y, z]`` of ``resolution``^3.

    By default the mesh keeps its axes (rotate it first, pass ``rotation``, or use
    ``align_mesh_rotation`` for the shared meshes), its longest side is scaled to the full grid,
    it is centred in x/y and rests on z = 0, and the grid is filled solid (:func:`solid_fill`).
    ``transform`` (4x4, mesh -> grid coordinates, e.g. a cache row's ``mesh_transform`` at 32^3)
    overrides the automatic placement. ``up`` stands the mesh up first by a rule ("x", "y",
    "z", "long", "thin", see :func:`align_mesh_rotation`) or, for a file of the shared
    labelled meshes (``.../<Class>/<id>.obj``), ``"auto"``: the rule the training set used.
    """
    if not isinstance(resolution, int | np.integer) or not 1 <= resolution <= 512:
        raise ValueError(f"resolution must be an integer in 1..512, got {resolution!r}")
    m = _as_mesh(mesh_or_path)
    if up is not None:
        if rotation is not None or transform is not None:
            raise ValueError("give either up, rotation or transform, not several")
        if up == "auto":
            if not isinstance(mesh_or_path, str | Path):
                raise ValueError('up="auto" needs a mesh file path (its folder is the class)')
            p = Path(mesh_or_path)
            up = up_rule(p.parent.name, mesh_source(p))
        rotation = align_mesh_rotation(m, up)
    tf = grid_transform(m, rotation, resolution) if transform is None else np.asarray(transform)
    if tf.shape != (4, 4):
        raise ValueError(f"transform must be 4x4, got {tf.shape}")
    v = m.vertices @ tf[:3, :3].T + tf[:3, 3]
    g = _surface_voxels(v, np.asarray(m.faces), resolution)
    return solid_fill(g) if solid else g


def extract_meshes(data: str | Path | None = None, cache: str | Path | None = None) -> Path:
    """Unpack the labelled meshes into the cache (once); returns ``<cache>/infomr``."""
    import tarfile

    root = cache_dir(cache)
    out = root / MESH_DIR
    marker = out / ".complete"
    if marker.is_file():
        return out
    src = data_dir(data) / MESH_ARCHIVE
    if not src.is_file():
        raise FileNotFoundError(f"{MESH_ARCHIVE} is missing from {src.parent}")
    tmp = Path(tempfile.mkdtemp(prefix=".infomr.", dir=root))
    with tarfile.open(src, "r:xz") as tar:
        tar.extractall(tmp, filter="data")
    inner = tmp / MESH_DIR
    if not inner.is_dir():
        raise ValueError(f"{MESH_ARCHIVE} has no top-level {MESH_DIR}/ folder")
    (inner / ".complete").write_text("ok\n")
    if out.exists():
        import shutil

        shutil.rmtree(out)
    os.replace(inner, out)
    tmp.rmdir()
    return out


def load_mesh_set(
    data: str | Path | None = None,
    cache: str | Path | None = None,
    *,
    limit: int | None = None,
    log=print,
) -> VoxelSet:
    """Align, normalise and voxelize (solid, 32^3) every labelled mesh; one row per mesh."""
    root = cache_dir(cache)
    mesh_root = extract_meshes(data, root)
    files = sorted(mesh_root.glob("*/*.obj"))
    if limit is not None:
        files = files[:limit]
    grids, labels, sources, ids, paths, tfs = [], [], [], [], [], []
    t0 = time.perf_counter()
    for i, f in enumerate(files):
        cls = f.parent.name
        src = mesh_source(f)
        try:
            m = _as_mesh(f)
            r = align_mesh_rotation(m, up_rule(cls, src))
            tf = grid_transform(m, r)
            g = voxelize_mesh(m, RES, transform=tf)
        except (ValueError, FileNotFoundError) as e:  # a broken file must not stop the build
            log(f"  skipped {f.relative_to(root)}: {e}")
            continue
        grids.append(g)
        labels.append(cls.lower())
        sources.append(src)
        ids.append(f"{cls}/{f.stem}")
        paths.append(str(f.relative_to(root)))
        tfs.append(tf.astype(np.float32))
        if (i + 1) % 100 == 0 or i + 1 == len(files):
            el = time.perf_counter() - t0
            left = el / (i + 1) * len(files) - el
            log(f"  meshes {i + 1}/{len(files)}  {el:.0f}s  (~{left:.0f}s left)")
    n = len(grids)
    vs = _make_set(np.stack(grids), labels, sources, ids, [0] * n, paths)
    vs.mesh_transform = np.stack(tfs)
    return vs


# --------------------------------------------------------------------------- cache


def _atomic_savez(path: Path, **arrays) -> None:
    with atomic_path(path, suffix=".tmp.npz", mkdir=True) as tmp:
        np.savez_compressed(tmp, **arrays)


def save_voxels(vs: VoxelSet, path: str | Path) -> Path:
    """Write a :class:`VoxelSet` in the cache format (atomically)."""
    path = Path(path)
    if vs.voxels.shape[1:] != (RES, RES, RES):
        raise ValueError(f"cache grids must be {RES}^3, got {vs.voxels.shape[1:]}")
    _atomic_savez(
        path,
        version=np.int64(CACHE_VERSION),
        voxels=pack(vs.voxels),
        **{f: getattr(vs, f) for f in _FIELDS[1:]},
    )
    return path


def load_voxels(
    cache: str | Path | None = None,
    split: str | None = None,
    labels: str | Iterable[str] | None = None,
) -> VoxelSet:
    """Read the voxel cache (file or folder), optionally filtered by split and label(s)."""
    p = Path(cache) if cache is not None else cache_dir(create=False)
    if p.is_dir() or p.suffix != ".npz":
        p = p / CACHE_FILE
    if not p.is_file():
        raise FileNotFoundError(
            f"voxel cache {p} not found; build it with `python -m image2lego.training.data build`"
        )
    if split not in (None, "train", "val"):
        raise ValueError(f"split must be 'train', 'val' or None, got {split!r}")
    with np.load(p, allow_pickle=False) as d:
        meta = {f: d[f] for f in _FIELDS[1:] if f in d.files}
        n = len(meta["label"])
        meta.setdefault("mesh_path", np.full(n, "", dtype=str))
        meta.setdefault("mesh_transform", np.zeros((n, 4, 4), dtype=np.float32))
        mask = np.ones(n, dtype=bool)
        if split is not None:
            mask &= meta["split"] == split
        if labels is not None:
            labs = [labels] if isinstance(labels, str) else list(labels)
            mask &= np.isin(meta["label"], labs)
        packed = d["voxels"][mask] if not mask.all() else d["voxels"]
    return VoxelSet(unpack(packed, RES), *(meta[f][mask] for f in _FIELDS[1:]))


SETS = ("chairs", "monitors", "beds", "meshes", "shapenet", "modelnet10", "airplanes40")
DEFAULT_SETS = ("chairs", "monitors", "beds", "meshes")
_LOADERS = {
    "chairs": load_chairs,
    "monitors": load_monitors,
    "beds": load_beds,
    "shapenet": load_shapenet,
    "modelnet10": load_modelnet10,
    "airplanes40": load_airplanes40,
}


def cap_models(
    vs: VoxelSet,
    max_train: int | None = None,
    max_val: int | None = None,
    train_rotations: Sequence[int] | None = None,
    seed: int = SPLIT_SEED,
) -> VoxelSet:
    """Keep at most ``max_train`` / ``max_val`` whole models per (source, label) group and
    split (a seeded choice, after :func:`assign_split`, so the split itself never changes),
    and for rotated sources only ``train_rotations`` of the *training* models (validation keeps
    every rotation, so the validation chairs stay the 1,068 rows of the model card)."""
    keep = np.ones(len(vs), dtype=bool)
    for src, lab in sorted(set(zip(vs.source.tolist(), vs.label.tolist(), strict=True))):
        for sp, cap in (("train", max_train), ("val", max_val)):
            if cap is None:
                continue
            m = (vs.source == src) & (vs.label == lab) & (vs.split == sp)
            ids = np.unique(vs.model_id[m])
            if len(ids) <= cap:
                continue
            rng = np.random.default_rng([seed, zlib.crc32(f"cap/{src}/{lab}/{sp}".encode())])
            chosen = ids[np.sort(rng.choice(len(ids), cap, replace=False))]
            keep[m & ~np.isin(vs.model_id, chosen)] = False
    if train_rotations is not None:
        keep &= ~(
            (vs.split == "train") & (vs.rotation > 0) & ~np.isin(vs.rotation, train_rotations)
        )
    return vs.subset(keep)


def build_voxel_cache(
    data: str | Path | None = None,
    cache: str | Path | None = None,
    *,
    meshes: bool = True,
    mesh_limit: int | None = None,
    sets: Sequence[str] | None = None,
    max_train_models: int | None = None,
    max_val_models: int | None = None,
    train_rotations: Sequence[int] | None = None,
    log=print,
) -> Path:
    """Build ``voxels32.npz`` from the shared data: the sets named in ``sets`` (default the
    ModelNet chairs, monitors, beds and, unless ``meshes`` is False, the labelled meshes; add
    ``shapenet``, ``modelnet10``, ``airplanes40`` for the 13+ classes), split by whole models,
    then optionally capped per class (:func:`cap_models`)."""
    t0 = time.perf_counter()
    if sets is None:
        sets = DEFAULT_SETS if meshes else tuple(s for s in DEFAULT_SETS if s != "meshes")
    unknown = sorted(set(sets) - set(SETS))
    if unknown:
        raise ValueError(f"unknown data sets {unknown}; choose from {', '.join(SETS)}")
    parts = []
    for name in SETS:  # a fixed order, whatever order the sets were named in
        if name not in sets:
            continue
        t = time.perf_counter()
        if name == "meshes":
            parts.append(load_mesh_set(data, cache, limit=mesh_limit, log=log))
        else:
            parts.append(_LOADERS[name](data))
        log(f"{name}: {len(parts[-1])} grids in {time.perf_counter() - t:.1f}s")
    vs = normalise_set(concat(parts))
    assign_split(vs)
    if max_train_models is not None or max_val_models is not None or train_rotations:
        vs = cap_models(vs, max_train_models, max_val_models, train_rotations)
    out = save_voxels(vs, cache_dir(cache) / CACHE_FILE)
    log(f"wrote {out} ({len(vs)} grids) in {time.perf_counter() - t0:.1f}s")
    for lab, c in vs.counts().items():
        log(f"  {lab:>16}: train {c.get('train', 0):6d}  val {c.get('val', 0):5d}")
    return out


def add_train_rotations(
    vs: VoxelSet, rotated: VoxelSet, rotations: Sequence[int]
) -> tuple[VoxelSet, int]:
    """``vs`` with the missing ``rotations`` of its rotated *training* models appended, taken
    from ``rotated`` (the full source, e.g. :func:`load_chairs`; the rows taken are brought
    to the one size by :func:`normalise_set`, idempotent on rows already normalised):
    only models that are training models of ``vs`` (so the split and the per-class cap never
    change), only (model, rotation) pairs ``vs`` lacks. The old rows keep their order and
    come first, so views rendered for ``vs`` stay aligned (``render_cache`` reuses them and
    draws only the new rows). Returns ``(new set, rows added)``."""
    bad = sorted(set(int(r) for r in rotations) - set(range(1, 13)))
    if bad:
        raise ValueError(f"rotations must be in 1..12, got {bad}")
    have = set(zip(vs.source.tolist(), vs.model_id.tolist(), vs.rotation.tolist(), strict=True))
    train = vs.rotation > 0
    train &= vs.split == "train"
    models = set(
        zip(
            vs.source[train].tolist(),
            vs.label[train].tolist(),
            vs.model_id[train].tolist(),
            strict=True,
        )
    )
    keep = np.zeros(len(rotated), dtype=bool)
    for i, (src, lab, mid, rot) in enumerate(
        zip(rotated.source.tolist(), rotated.label.tolist(), rotated.model_id.tolist(),
            rotated.rotation.tolist(), strict=True)
    ):  # fmt: skip
        keep[i] = (src, lab, mid) in models and rot in rotations and (src, mid, rot) not in have
    extra = normalise_set(rotated.subset(keep))
    extra.split = np.full(len(extra), "train", dtype=vs.split.dtype)
    return concat([vs, extra]), int(keep.sum())


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m image2lego.training.data", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build voxels32.npz in the cache")
    b.add_argument("--data", default=None, help="shared data folder (default: $IMAGE2LEGO_DATA)")
    b.add_argument("--cache", default=None, help="cache folder (default: $IMAGE2LEGO_CACHE)")
    b.add_argument("--no-meshes", action="store_true", help="ModelNet sets only (seconds)")
    b.add_argument("--mesh-limit", type=int, default=None, help="first N meshes (for testing)")
    b.add_argument(
        "--sets", nargs="+", choices=SETS, default=None,
        help=f"data sets to include (default: {' '.join(DEFAULT_SETS)})",
    )  # fmt: skip
    b.add_argument("--max-train-models", type=int, default=None,
                   help="at most N training models per source and class")  # fmt: skip
    b.add_argument("--max-val-models", type=int, default=None,
                   help="at most N validation models per source and class")  # fmt: skip
    b.add_argument("--train-rotations", type=int, nargs="+", default=None,
                   help="rotations (1..12) kept of the rotated training chairs")  # fmt: skip
    nm = sub.add_parser(
        "normalise",
        help="rewrite an existing cache's grids to the one size convention (rows, split and "
        "rendered views kept: views128.npz is linked, the renders are framed so size-free)",
    )
    nm.add_argument("--cache", required=True, help="source cache folder")
    nm.add_argument("--out", required=True, help="new cache folder")
    ar = sub.add_parser(
        "rotations",
        help="copy a cache, appending the missing rotations of its rotated training models "
        "(ModelNet40 chairs); views128.npz is linked so `render` draws only the new rows",
    )
    ar.add_argument("--cache", required=True, help="source cache folder")
    ar.add_argument("--out", required=True, help="new cache folder")
    ar.add_argument("--data", default=None, help="shared data folder (default: $IMAGE2LEGO_DATA)")
    ar.add_argument("--train-rotations", type=int, nargs="+", default=list(range(1, 13)),
                    help="rotations (1..12) each training chair gets (default: all)")  # fmt: skip
    r = sub.add_parser("render", help="render views128.npz for every cache row")
    r.add_argument("--cache", default=None, help="cache folder (default: $IMAGE2LEGO_CACHE)")
    r.add_argument("--views", type=int, default=3, help="views per row (view 0 = set pose)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--limit", type=int, default=None, help="first N rows (for testing)")
    r.add_argument("--fresh", action="store_true", help="ignore an existing views128.npz")
    r.add_argument("--style", choices=("jitter", "photo"), default="jitter",
                   help="views 1..: small jitter (the shipped weights) or photo-like")  # fmt: skip
    r.add_argument(
        "--reuse-older", action="store_true", help="reuse views of older renderer versions too"
    )
    args = ap.parse_args(argv)
    if args.cmd == "normalise":
        src, dst = Path(args.cache), Path(args.out)
        if src.resolve() == dst.resolve():
            raise SystemExit("--out must be a new folder, not the source cache")
        vs = normalise_set(load_voxels(src))
        save_voxels(vs, dst / CACHE_FILE)
        views = src / VIEWS_FILE
        if views.is_file() and not (dst / VIEWS_FILE).exists():
            os.symlink(views.resolve(), dst / VIEWS_FILE)
        print(f"wrote {dst / CACHE_FILE} ({len(vs)} grids, longest side {CANON_LONGEST})")
        return 0
    if args.cmd == "rotations":
        src, dst = Path(args.cache), Path(args.out)
        if src.resolve() == dst.resolve():
            raise SystemExit("--out must be a new folder, not the source cache")
        if (dst / CACHE_FILE).exists():
            raise SystemExit(f"{dst / CACHE_FILE} exists; choose a new folder")
        vs = load_voxels(src)
        if (vs.rotation > 0).any():
            rotated = load_chairs(args.data)
        else:
            rotated = vs.subset(np.zeros(len(vs), dtype=bool))
        vs, added = add_train_rotations(vs, rotated, args.train_rotations)
        save_voxels(vs, dst / CACHE_FILE)
        views = src / VIEWS_FILE
        if views.is_file() and not (dst / VIEWS_FILE).exists():
            os.symlink(views.resolve(), dst / VIEWS_FILE)
        print(f"wrote {dst / CACHE_FILE} ({len(vs)} grids, {added} new rotated training rows)")
        return 0
    if args.cmd == "render":
        from .render import render_cache

        render_cache(
            args.cache,
            args.views,
            args.seed,
            limit=args.limit,
            fresh=args.fresh,
            reuse_older=args.reuse_older,
            style=args.style,
        )
    elif args.cmd == "build":
        build_voxel_cache(
            args.data,
            args.cache,
            meshes=not args.no_meshes,
            mesh_limit=args.mesh_limit,
            sets=args.sets,
            max_train_models=args.max_train_models,
            max_val_models=args.max_val_models,
            train_rotations=args.train_rotations,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

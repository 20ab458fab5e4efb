"""Training shapes in one canonical frame, their train/val split, and the on-disk cache.

Canonical frame (every grid this module returns)
-----------------------------------------------
``bool`` arrays indexed ``[x, y, z]``, shape ``(32, 32, 32)``, **Z up**, the object's **front
facing -Y** (the Blender "Front" view, camera at -Y looking +Y, sees the front), resting on
``z = 0`` and centred in x and y (bounding-box centre moved to the grid centre by a whole-voxel
shift; sources are never rescaled, so chairs stay at their native ~24-voxel size).

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

Handedness cannot be checked on mirror-symmetric sets; grids are treated as right-handed
``[x, y, z]`` as stored.

Split: whole models, never rotations. Per (source, label) group the sorted model ids are
permuted with ``np.random.default_rng([SPLIT_SEED, crc32(source/label)])`` and the first
``ceil(10%)`` go to ``"val"``; all 12 rotations of a validation chair are in ``"val"``.

Cache (``python -m image2lego.core.data build``): ``$IMAGE2LEGO_CACHE/voxels32.npz`` with
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

from .paths import cache_dir, data_dir

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


def _read_source(path: Path) -> tuple[np.ndarray, dict]:
    if not path.is_file():
        raise FileNotFoundError(f"{path.name} is missing from the shared data folder {path.parent}")
    with np.load(path) as d:
        shape = tuple(int(s) for s in d["shape"])
        grids = unpack(d["voxels"], shape[-1])
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


def load_chairs(data: str | Path | None = None) -> VoxelSet:
    """ModelNet40 chairs, all 888 x 12 rotations, in the canonical frame."""
    grids, extra = _read_source(data_dir(data) / CHAIR_FILE)
    names = [str(s) for s in extra["names"]]
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


def load_monitors(data: str | Path | None = None) -> VoxelSet:
    """ModelNet10 monitors, turned to face -Y, filled solid."""
    grids, _ = _read_source(data_dir(data) / MONITOR_FILE)
    out = np.stack([canonicalize(fill_solid(np.rot90(g, 1, axes=(0, 1)))) for g in grids])
    n = len(out)
    return _make_set(
        out, ["monitor"] * n, ["modelnet10"] * n, [f"monitor_{i:04d}" for i in range(n)], [0] * n
    )


def load_beds(data: str | Path | None = None) -> VoxelSet:
    """ModelNet10 beds, pooled 64^3 -> 32^3 (threshold 2/8), already facing -Y."""
    grids, _ = _read_source(data_dir(data) / BED_FILE)
    out = np.stack([canonicalize(fill_solid(pool2(g))) for g in grids])
    n = len(out)
    return _make_set(
        out, ["bed"] * n, ["modelnet10"] * n, [f"bed_{i:04d}" for i in range(n)], [0] * n
    )


def concat(sets: Iterable[VoxelSet]) -> VoxelSet:
    sets = list(sets)
    return VoxelSet(*(np.concatenate([getattr(s, f) for s in sets]) for f in _FIELDS))


_FIELDS = ("voxels", "label", "source", "model_id", "rotation", "split", "mesh_path")


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


# --------------------------------------------------------------------------- cache


def _atomic_savez(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp.npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
            f"voxel cache {p} not found; build it with `python -m image2lego.core.data build`"
        )
    if split not in (None, "train", "val"):
        raise ValueError(f"split must be 'train', 'val' or None, got {split!r}")
    with np.load(p, allow_pickle=False) as d:
        meta = {f: d[f] for f in _FIELDS[1:] if f in d.files}
        n = len(meta["label"])
        meta.setdefault("mesh_path", np.full(n, "", dtype=str))
        mask = np.ones(n, dtype=bool)
        if split is not None:
            mask &= meta["split"] == split
        if labels is not None:
            labs = [labels] if isinstance(labels, str) else list(labels)
            mask &= np.isin(meta["label"], labs)
        packed = d["voxels"][mask] if not mask.all() else d["voxels"]
    return VoxelSet(unpack(packed, RES), *(meta[f][mask] for f in _FIELDS[1:]))


def build_voxel_cache(
    data: str | Path | None = None,
    cache: str | Path | None = None,
    *,
    meshes: bool = False,
    log=print,
) -> Path:
    """Build ``voxels32.npz`` from the shared data: the ModelNet sets (+ meshes if asked)."""
    t0 = time.perf_counter()
    parts = []
    for name, fn in (("chairs", load_chairs), ("monitors", load_monitors), ("beds", load_beds)):
        t = time.perf_counter()
        parts.append(fn(data))
        log(f"{name}: {len(parts[-1])} grids in {time.perf_counter() - t:.1f}s")
    if meshes:
        raise NotImplementedError("mesh voxelization is not available yet")
    vs = concat(parts)
    assign_split(vs)
    out = save_voxels(vs, cache_dir(cache) / CACHE_FILE)
    log(f"wrote {out} ({len(vs)} grids) in {time.perf_counter() - t0:.1f}s")
    for lab, c in vs.counts().items():
        log(f"  {lab:>16}: train {c.get('train', 0):6d}  val {c.get('val', 0):5d}")
    return out


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m image2lego.core.data", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build voxels32.npz in the cache")
    b.add_argument("--data", default=None, help="shared data folder (default: $IMAGE2LEGO_DATA)")
    b.add_argument("--cache", default=None, help="cache folder (default: $IMAGE2LEGO_CACHE)")
    b.add_argument("--meshes", action="store_true", help="also the labelled meshes")
    args = ap.parse_args(argv)
    if args.cmd == "build":
        build_voxel_cache(args.data, args.cache, meshes=args.meshes)
    return 0


if __name__ == "__main__":
    sys.exit(main())

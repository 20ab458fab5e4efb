"""Merging plate-lattice cells into catalogue bricks.

Input is a colour lattice ``cells[x, y, plate]`` (``-1`` empty, else an LDraw colour code)
as made by :mod:`image2lego.lego.voxels` and :mod:`image2lego.lego.convert`. Output is a list
of :class:`~image2lego.lego.bricks.Brick` that covers every filled cell exactly once with
parts of that cell's colour.

The algorithm, in four stages:

1. **Units.** The lattice is cut into *units*: one plate layer (height 1) or a slab of three
   plate layers (height 3, a brick layer). In ``"mixed"`` mode a column of three plate cells
   of one colour in a slab becomes a brick cell, the rest stay plates — a per-column version
   of "three identical plate layers make a brick layer".
2. **Per-layer tiling** (:func:`tile_layer`, vectorised with numpy on whole rows at once).
   Runs of equal colour are cut into the longest legal parts. Two-stud-wide runs go first,
   along the layer's *primary* direction, which alternates between layers (x, y, x, …) so
   seams cross; then two-wide runs across it, then one-wide runs, then 1×1s. Run lengths
   are split by precomputed optimal decompositions in two *phases* whose seams avoid each
   other; the phase alternates between neighbouring rows and between layers of the same
   direction, giving a running bond. Several variants (row-pairing offset × phase) are
   tiled and the one with the best ``links - BRICK_WEIGHT * bricks`` to the layer below is
   kept (the local improvement pass).
3. **Re-merge around breaks** (:func:`connect`). When bricks fall into more connected
   components than the cells do (6-connectivity), breaks (two horizontally adjacent bricks
   in different components) are fixed in stages: first a part straddling the break that
   touches both sides above or below; then a bounded number of local re-tilings and
   demotions of single breaks; then, in mixed mode, the bricks of the smaller pieces (then
   also their neighbours) are demoted to staggered plates, since three plate layers bridge
   what one brick layer cannot; last, local fixes without the bound.
   A change is kept only if it lowers the number of components, otherwise it is undone.
   When nothing works (e.g. a one-brick-thick sheet in bricks-only mode), the result says
   so and :func:`image2lego.lego.convert.voxels_to_bricks` adds a warning.
4. **Part count** (:func:`stack_plates`, :func:`coalesce`): three identical stacked plates
   become a brick, and touching same-layer parts whose union is a catalogue part are
   joined. Neither can break a connection. For small models the plain raster greedy
   (:func:`greedy_tiling`) is one more candidate per layer in stage 2.

Determinism: everything is a pure function of the inputs and ``seed`` (the seed rotates the
order in which equally good variants are preferred) — unless :func:`connect` runs out of its
CPU-time budget (:data:`budget_clock`; 20 s by default; a conversion shares one of
:data:`image2lego.lego.convert.CONNECT_BUDGET_S` among its candidates), which only
pathological inputs reach and which it reports (``ConnectResult.timed_out``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from . import connectivity
from .bricks import Brick, BrickModel
from .catalogue import CATALOGUE
from .units import PLATES_PER_BRICK

#: The clock every time budget of the merger counts on: this process's CPU seconds (as the
#: repair's budget does), not wall time, so a machine busy with other work gives the same
#: bricks as an idle one (under load, a wall-clock budget cut the colour try short and
#: Update Model rebuilt a different model from the same photo).
budget_clock = time.process_time

# --------------------------------------------------------------------------------------------
# Catalogue lookups
# --------------------------------------------------------------------------------------------

PART_IDS: tuple[str, ...] = tuple(CATALOGUE)
_PART_INDEX = {pid: i for i, pid in enumerate(PART_IDS)}
_MAXDIM = 1 + max(p.length for p in CATALOGUE.values())
# _LUT_PART[h, nx, ny] -> index into PART_IDS or -1; _LUT_ROT the matching ``rotated`` flag.
_LUT_PART = np.full((PLATES_PER_BRICK + 1, _MAXDIM, _MAXDIM), -1, dtype=np.int16)
_LUT_ROT = np.zeros((PLATES_PER_BRICK + 1, _MAXDIM, _MAXDIM), dtype=bool)
for _i, _p in enumerate(CATALOGUE.values()):
    _LUT_PART[_p.height, _p.length, _p.width] = _i
    _LUT_PART[_p.height, _p.width, _p.length] = _i
    if _p.width != _p.length:
        _LUT_ROT[_p.height, _p.width, _p.length] = True  # long side along +y


def run_lengths(width: int, height: int) -> tuple[int, ...]:
    """Legal lengths of ``width``-stud-wide parts of ``height`` plates, longest first."""
    return tuple(
        sorted(
            {p.length for p in CATALOGUE.values() if p.width == width and p.height == height},
            reverse=True,
        )
    )


# --------------------------------------------------------------------------------------------
# Optimal run decompositions in two phases
# --------------------------------------------------------------------------------------------

_PIECE_COST = 2  # one more part
_SEAM_COST = 3  # a seam in the same place as the other phase's (worse than an extra part)


def _solve(n: int, lengths: tuple[int, ...], forbidden: frozenset[int]) -> list[int]:
    """Fewest parts (and seams off ``forbidden``) summing to ``n``; longest parts first.

    A small dynamic programme; written by hand because no library does constrained integer
    compositions, and it runs once per run length.
    """
    inf = 1 << 30
    best = [inf] * (n + 1)
    best[n] = 0
    for i in range(n - 1, -1, -1):
        for ln in lengths:
            j = i + ln
            if j <= n and best[j] < inf:
                c = _PIECE_COST + best[j] + (_SEAM_COST if j < n and j in forbidden else 0)
                if c < best[i]:
                    best[i] = c
    if best[0] >= inf:
        return []
    out, i = [], 0
    while i < n:
        for ln in lengths:  # longest first among the optimal choices
            j = i + ln
            if j <= n and best[j] < inf:
                c = _PIECE_COST + best[j] + (_SEAM_COST if j < n and j in forbidden else 0)
                if c == best[i]:
                    out.append(ln)
                    i = j
                    break
    return out


@cache
def decomposition(n: int, lengths: tuple[int, ...], phase: int) -> tuple[int, ...]:
    """Part lengths for a run of ``n`` cells. Phase 1 avoids phase 0's seams where it can."""
    d0 = _solve(n, lengths, frozenset())
    if phase == 0:
        return tuple(d0)
    seams = frozenset(np.cumsum(d0)[:-1].tolist())
    return tuple(_solve(n, lengths, seams))


class _Table:
    """Flattened decompositions for all run lengths up to ``nmax`` (both phases)."""

    def __init__(self, lengths: tuple[int, ...]):
        self.lengths = lengths
        self.nmax = -1
        self._grow(16)

    def _grow(self, nmax: int) -> None:
        count = np.zeros((2, nmax + 1), dtype=np.int64)
        first = np.zeros((2, nmax + 1), dtype=np.int64)
        pos: list[int] = []
        lens: list[int] = []
        for ph in (0, 1):
            for n in range(nmax + 1):
                d = decomposition(n, self.lengths, ph) if n else ()
                first[ph, n] = len(pos)
                count[ph, n] = len(d)
                pos.extend(
                    np.concatenate([[0], np.cumsum(d)[:-1]]).astype(int).tolist() if d else []
                )
                lens.extend(d)
        self.count, self.first = count, first
        self.pos = np.asarray(pos, dtype=np.int64)
        self.len = np.asarray(lens, dtype=np.int64)
        self.nmax = nmax

    def expand(self, lengths: np.ndarray, phases: np.ndarray):
        """For runs (length, phase) return (run index, offset in run, part length) per part."""
        if len(lengths) and lengths.max() > self.nmax:
            self._grow(int(max(lengths.max(), 2 * self.nmax)))
        cnt = self.count[phases, lengths]
        total = int(cnt.sum())
        run = np.repeat(np.arange(len(lengths)), cnt)
        within = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        idx = self.first[phases, lengths][run] + within
        return run, self.pos[idx], self.len[idx]


@cache
def _table(width: int, height: int) -> _Table:
    return _Table(run_lengths(width, height))


# --------------------------------------------------------------------------------------------
# Per-layer tiling
# --------------------------------------------------------------------------------------------


def _runs(v: np.ndarray):
    """Maximal runs of one non-negative value along axis 1 of a 2-D int array.

    Returns ``(row, start, length, value)`` arrays in row-major order.
    """
    n0, n1 = v.shape
    flat = np.full((n0, n1 + 1), -1, dtype=v.dtype)
    flat[:, :n1] = v
    flat = flat.ravel()
    b = np.flatnonzero(flat[1:] != flat[:-1]) + 1  # first index of each new value
    starts = np.concatenate([[0], b])
    ends = np.concatenate([b, [len(flat)]])
    vals = flat[starts]
    keep = vals >= 0
    starts, ends, vals = starts[keep], ends[keep], vals[keep]
    row, col = np.divmod(starts, n1 + 1)
    return row, col, ends - starts, vals


@dataclass
class Rects:
    """Axis-aligned footprints in one layer: min corner ``(x, y)``, size ``(nx, ny)``, colour."""

    x: np.ndarray
    y: np.ndarray
    nx: np.ndarray
    ny: np.ndarray
    color: np.ndarray

    @staticmethod
    def concat(parts: list[Rects]) -> Rects:
        if not parts:
            e = np.zeros(0, dtype=np.int64)
            return Rects(e, e, e, e, e)
        return Rects(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in "x y nx ny color".split())
        )

    def __len__(self) -> int:
        return len(self.x)

    def paint(self, shape: tuple[int, ...], ids: np.ndarray | None = None) -> np.ndarray:
        """2-D int map of rect index (or ``ids``) per cell, -1 elsewhere (rects are disjoint)."""
        out = np.full(shape, -1, dtype=np.int64)
        if not len(self):
            return out
        area = self.nx * self.ny
        r = np.repeat(np.arange(len(self)), area)
        k = np.arange(int(area.sum())) - np.repeat(np.cumsum(area) - area, area)
        xs = self.x[r] + k // self.ny[r]
        ys = self.y[r] + k % self.ny[r]
        out[xs, ys] = r if ids is None else ids[r]
        return out


class _Stack:
    """Layers padded to a common square, all turned so their primary direction is +x.

    ``F[l, x, y]`` holds free cells (-1 once used). Two empty rows/columns of padding keep
    row pairs and runs from crossing from one layer into the next when layers are stacked
    into one 2-D array, so every pass runs over all layers with a few numpy calls.
    """

    def __init__(self, cells: np.ndarray, axes: np.ndarray):
        n, X, Y = cells.shape
        s = max(X, Y)
        s += s % 2 + 2
        F = np.full((n, s, s), -1, dtype=np.int16)
        flip = axes == 1
        F[~flip, :X, :Y] = cells[~flip]
        F[flip, :Y, :X] = cells[flip].transpose(0, 2, 1)
        self.F, self.s, self.flip, self.shape = F, s, flip, (X, Y)
        self.out: list[tuple[np.ndarray, ...]] = []

    def view(self, along: int) -> np.ndarray:
        """2-D array whose rows are (layer, row) and whose runs go along x (0) or y (1)."""
        if along == 0:
            return self.F.transpose(0, 2, 1).reshape(-1, self.s)
        return self.F.reshape(-1, self.s)

    def commit(self, along, rows, starts, lens, vals, width, height, phases) -> None:
        """Cut runs into parts, record them and mark their cells used."""
        run, off, ln = _table(width, height).expand(lens, phases)
        s = self.s
        r = rows[run]
        c = starts[run] + off
        layer, rr = np.divmod(r, s)
        w = np.full(len(r), width, dtype=np.int64)
        if along == 0:  # rows are y, columns are x
            self.out.append((layer, c, rr, ln, w, vals[run]))
        else:
            self.out.append((layer, rr, c, w, ln, vals[run]))
        # mark covered cells (runs are covered exactly by their parts)
        tot = int(lens.sum())
        rr_ = np.repeat(rows, lens)
        cc_ = np.repeat(starts, lens) + (np.arange(tot) - np.repeat(np.cumsum(lens) - lens, lens))
        lay, inrow = np.divmod(rr_, s)
        for k in range(width):
            if along == 0:
                self.F[lay, cc_, inrow + k] = -1
            else:
                self.F[lay, inrow + k, cc_] = -1


def _doubles(st: _Stack, along, offsets, minlen, height, phases, whole: int = 0):
    """Two-wide runs along ``along`` of at least ``minlen``. With ``whole`` > 0 only whole
    multiples of ``whole`` are taken (from the run's start in phase 0, its end in phase 1),
    leaving the remainder for a later pass, possibly in the other direction."""
    V = st.view(along)
    s = st.s
    rows = np.arange(V.shape[0] - 1)
    inl = rows % s
    r0 = rows[(inl % 2 == offsets[rows // s]) & (inl < s - 1)]
    A, B = V[r0], V[r0 + 1]
    D = np.where(A == B, A, -1)
    pr, start, ln, val = _runs(D)
    keep = ln >= minlen
    if not keep.any():
        return
    pr, start, ln, val = pr[keep], start[keep], ln[keep], val[keep]
    rows = r0[pr]
    ph = ((rows % s) // 2 + phases[rows // s]) % 2
    if whole:  # one phase for the whole layer, so the remainders line up into a strip
        rem = ln % whole
        start = start + np.where(phases[rows // s] == 1, rem, 0)
        ln = ln - rem
        ph = np.zeros_like(ph)  # whole multiples: longest parts only
    st.commit(along, rows, start, ln, val, 2, height, ph)


def _singles(st: _Stack, along, minlen, height, phases):
    V = st.view(along)
    pr, start, ln, val = _runs(V)
    keep = ln >= minlen
    if not keep.any():
        return
    pr, start, ln, val = pr[keep], start[keep], ln[keep], val[keep]
    ph = ((pr % st.s) + phases[pr // st.s]) % 2
    st.commit(along, pr, start, ln, val, 1, height, ph)


def tile_layers(
    cells: np.ndarray,
    height: int,
    axes: npt.ArrayLike,
    offsets: npt.ArrayLike,
    phases: npt.ArrayLike,
    strip: bool = False,
) -> list[Rects]:
    """Tile a stack of layers ``cells[l, x, y]`` (``-1`` empty, else colour) at once.

    Per layer: ``axes`` is the primary direction (0: long sides along x, 1: along y),
    ``offsets`` which rows are paired into two-wide runs and ``phases`` the running-bond
    phase. Every non-negative cell is covered exactly once by a rectangle of its own colour
    whose size is a catalogue part of ``height`` plates. Returns one :class:`Rects` per layer.
    """
    cells = np.asarray(cells)
    n = cells.shape[0]
    axes = np.broadcast_to(np.asarray(axes, dtype=np.int64), (n,))
    offsets = np.broadcast_to(np.asarray(offsets, dtype=np.int64), (n,))
    phases = np.broadcast_to(np.asarray(phases, dtype=np.int64), (n,))
    st = _Stack(cells, axes)
    if strip:
        # whole longest parts first in both directions, so a remainder strip at the end of
        # parallel runs is tiled across them (like a bricklayer finishing a course)
        longest = run_lengths(2, height)[0]
        _doubles(st, 0, offsets, longest, height, phases, whole=longest)
        _doubles(st, 1, offsets, longest, height, phases, whole=longest)
    for minlen in (4, 2):
        _doubles(st, 0, offsets, minlen, height, phases)
        _doubles(st, 0, 1 - offsets, minlen, height, phases)
        _doubles(st, 1, offsets, minlen, height, phases)
        _doubles(st, 1, 1 - offsets, minlen, height, phases)
    for minlen in (3, 2):
        _singles(st, 0, minlen, height, phases)
        _singles(st, 1, minlen, height, phases)
    lz, xs, ys = np.nonzero(st.F >= 0)
    one = np.ones(len(xs), dtype=np.int64)
    st.out.append((lz, xs, ys, one, one, st.F[lz, xs, ys]))
    layer, x, y, nx, ny, col = (np.concatenate(a) for a in zip(*st.out, strict=True))
    # turn flipped layers back
    f = st.flip[layer]
    x, y = np.where(f, y, x), np.where(f, x, y)
    nx, ny = np.where(f, ny, nx), np.where(f, nx, ny)
    order = np.argsort(layer, kind="stable")
    bounds = np.searchsorted(layer[order], np.arange(n + 1))
    res = []
    for i in range(n):
        sel = order[bounds[i] : bounds[i + 1]]
        res.append(Rects(x[sel], y[sel], nx[sel], ny[sel], col[sel]))
    return res


def tile_layer(
    cells: np.ndarray, height: int, axis: int = 0, offset: int = 0, phase: int = 0
) -> Rects:
    """Tile one layer; see :func:`tile_layers`."""
    return tile_layers(np.asarray(cells)[None], height, axis, offset, phase)[0]


def _sizes_by_area(height: int) -> list[tuple[int, int]]:
    return sorted(
        {
            (nx, ny)
            for nx in range(1, _MAXDIM)
            for ny in range(1, _MAXDIM)
            if _LUT_PART[height, nx, ny] >= 0
        },
        key=lambda s: (-s[0] * s[1], -s[0]),
    )


def greedy_tiling(cells: np.ndarray, height: int) -> Rects:
    """Plain raster-order greedy (the ColouredVoxels2LDR way): at each free cell, in x-major
    order, place the largest-area part of the cell's colour that fits (long side along x
    on ties). Sequential by nature, so a Python loop; used as one more candidate for small
    layers and as the benchmark's baseline.
    """
    free = np.array(cells, dtype=np.int64, copy=True)
    X, Y = free.shape
    sizes = _sizes_by_area(height)
    out: list[list[int]] = [[], [], [], [], []]
    for x, y in zip(*np.nonzero(free >= 0), strict=True):
        col = free[x, y]
        if col < 0:
            continue
        for nx, ny in sizes:
            if x + nx <= X and y + ny <= Y and (free[x : x + nx, y : y + ny] == col).all():
                free[x : x + nx, y : y + ny] = -1
                for lst, v in zip(out, (x, y, nx, ny, col), strict=True):
                    lst.append(int(v))
                break
    return Rects(*(np.asarray(v, dtype=np.int64) for v in out))


#: Layers with at most this many cells also get the greedy tiling as a candidate, in models
#: of at most ``GREEDY_CANDIDATE_MAX_MODEL`` cells (it is a Python loop: thin, detailed
#: models gain from it; big solids tile better with the running bond anyway).
GREEDY_CANDIDATE_MAX_CELLS = 600
GREEDY_CANDIDATE_MAX_MODEL = 60_000


# --------------------------------------------------------------------------------------------
# The brick set under construction
# --------------------------------------------------------------------------------------------


def unit_parity(z: int, height: int) -> int:
    """Primary direction of a unit: alternates between consecutive layers of the same height
    (and, in mixed mode, between a brick slab and the plates just above/below it)."""
    return (z // PLATES_PER_BRICK) % 2 if height == PLATES_PER_BRICK else z % 2


def plan_units(cells: np.ndarray, brick_types: str) -> list[tuple[int, int, np.ndarray]]:
    """Cut a colour lattice ``[x, y, plate]`` into ``(z, height, cells2d)`` units.

    ``"plates"``: every plate layer is a unit of height 1. ``"bricks"``/``"mixed"``: slabs of
    three plate layers from the ground; per column, three filled cells of one colour make a
    brick cell, the rest (and the top layers when the height is not a multiple of 3) are
    plates. In ``"bricks"`` mode every cell must end up in a brick cell.
    """
    nx, ny, npl = cells.shape
    units: list[tuple[int, int, np.ndarray]] = []
    if brick_types == "plates":
        for z in range(npl):
            if (cells[:, :, z] >= 0).any():
                units.append((z, 1, cells[:, :, z]))
        return units
    h = PLATES_PER_BRICK
    for z0 in range(0, npl, h):
        slab = cells[:, :, z0 : z0 + h]
        if slab.shape[2] == h:
            same = (
                (slab[:, :, 0] >= 0)
                & (slab[:, :, 0] == slab[:, :, 1])
                & (slab[:, :, 1] == slab[:, :, 2])
            )
        else:
            same = np.zeros((nx, ny), dtype=bool)
        if same.any():
            units.append((z0, h, np.where(same, slab[:, :, 0], -1)))
        for i in range(slab.shape[2]):
            rest = np.where(same, -1, slab[:, :, i])
            if (rest >= 0).any():
                if brick_types == "bricks":
                    raise ValueError(
                        "bricks-only mode needs every column of a brick layer to be filled "
                        "with one colour across its three plates"
                    )
                units.append((z0 + i, 1, rest))
    return units


@dataclass
class Assembly:
    """Bricks as parallel arrays plus a lattice of brick indices, for fast editing.

    ``lab[x, y, p]`` is the index of the brick filling plate cell ``(x, y, p)`` or -1.
    Removed bricks keep their index with ``alive=False``.
    """

    shape: tuple[int, ...]  # (nx, ny, n_plates), as BrickModel.shape
    allow_plates: bool = True
    x: list = field(default_factory=list)
    y: list = field(default_factory=list)
    z: list = field(default_factory=list)
    nx: list = field(default_factory=list)
    ny: list = field(default_factory=list)
    h: list = field(default_factory=list)
    color: list = field(default_factory=list)
    alive: list = field(default_factory=list)
    lab: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self):
        if self.lab is None:
            self.lab = np.full(self.shape, -1, dtype=np.int64)
        # edges across each plate boundary p|p+1, recomputed only where the lattice changed
        self._edges: dict[int, np.ndarray] = {}
        self._dirty: set[int] = set(range(self.shape[2] - 1))
        # components() of the unchanged assembly (a kept trial's count is asked for again)
        self._components: tuple[int, np.ndarray] | None = None

    def touch(self, z: int, height: int) -> None:
        """Mark the plate boundaries around layers ``z .. z+height-1`` as changed."""
        self._dirty.update(range(max(z - 1, 0), min(z + height, self.shape[2] - 1)))
        self._components = None

    def restore(self, saved) -> None:
        """Bring back removed bricks ``(i, x, y, z, nx, ny, h)`` (undo of :meth:`remove`)."""
        for i, x, y, z, nx, ny, h in saved:
            self.alive[i] = True
            self.lab[x : x + nx, y : y + ny, z : z + h] = i
            self.touch(z, h)

    def add(self, rects: Rects, z: int, height: int) -> np.ndarray:
        n0 = len(self.x)
        k = len(rects)
        ids = np.arange(n0, n0 + k)
        self.x.extend(rects.x.tolist())
        self.y.extend(rects.y.tolist())
        self.z.extend([z] * k)
        self.nx.extend(rects.nx.tolist())
        self.ny.extend(rects.ny.tolist())
        self.h.extend([height] * k)
        self.color.extend(rects.color.tolist())
        self.alive.extend([True] * k)
        plane = rects.paint(self.shape[:2], ids)
        m = plane >= 0
        for p in range(z, z + height):
            self.lab[:, :, p][m] = plane[m]
        self.touch(z, height)
        return ids

    def remove(self, ids) -> None:
        for i in ids:
            i = int(i)
            if not self.alive[i]:
                continue
            self.alive[i] = False
            x, y, z = self.x[i], self.y[i], self.z[i]
            self.lab[x : x + self.nx[i], y : y + self.ny[i], z : z + self.h[i]] = -1
            self.touch(z, self.h[i])

    def cells_of(self, i: int) -> tuple[slice, slice, slice]:
        return (
            slice(self.x[i], self.x[i] + self.nx[i]),
            slice(self.y[i], self.y[i] + self.ny[i]),
            slice(self.z[i], self.z[i] + self.h[i]),
        )

    @property
    def n_alive(self) -> int:
        return int(sum(self.alive))

    # ----- graph --------------------------------------------------------------------------
    def edges(self) -> np.ndarray:
        """Unique brick-index pairs ``(lower, upper)`` that touch across a layer boundary."""
        a = self.lab[:, :, :-1]
        b = self.lab[:, :, 1:]
        m = (a >= 0) & (b >= 0) & (a != b)
        n = max(len(self.x), 1)
        key = np.unique(a[m] * n + b[m])
        return np.stack([key // n, key % n], axis=1)

    def components(self) -> tuple[int, np.ndarray]:
        """``(n, comp)`` over alive bricks; ``comp[i]`` is -1 for removed bricks."""
        if self._components is not None:
            return self._components[0], self._components[1].copy()
        n = len(self.x)
        alive = np.asarray(self.alive, dtype=bool)
        for p in self._dirty:
            a = self.lab[:, :, p]
            b = self.lab[:, :, p + 1]
            m = (a >= 0) & (b >= 0) & (a != b)
            key = np.unique(a[m] * n + b[m])
            self._edges[p] = np.stack([key // n, key % n], axis=1)
        self._dirty.clear()
        e = np.concatenate(list(self._edges.values())) if self._edges else np.zeros((0, 2), int)
        e = e.astype(np.int64, copy=False)
        g = coo_matrix((np.ones(len(e), dtype=np.int8), (e[:, 0], e[:, 1])), shape=(n, n))
        _, lab = connected_components(g, directed=False)
        # relabel over alive bricks only
        uniq, comp_alive = np.unique(lab[alive], return_inverse=True)
        comp = np.full(n, -1, dtype=np.int64)
        comp[alive] = comp_alive
        self._components = (len(uniq), comp.copy())
        return len(uniq), comp

    # ----- output -------------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        alive = np.asarray(self.alive, dtype=bool)
        d = {
            k: np.asarray(getattr(self, k), dtype=np.int64)[alive]
            for k in "x y z nx ny h color".split()
        }
        d["part"] = _LUT_PART[d["h"], d["nx"], d["ny"]].astype(np.int64)
        d["rotated"] = _LUT_ROT[d["h"], d["nx"], d["ny"]]
        if (d["part"] < 0).any():  # pragma: no cover - tile_layer only makes catalogue sizes
            raise AssertionError("a merged footprint is not in the catalogue")
        return d

    def to_bricks(self, steps: np.ndarray | None = None) -> list[Brick]:
        d = self.arrays()
        st = np.zeros(len(d["x"]), dtype=np.int64) if steps is None else steps
        return [
            Brick(int(z), int(y), int(x), PART_IDS[p], bool(r), int(c), int(s))
            for z, y, x, p, r, c, s in zip(
                d["z"], d["y"], d["x"], d["part"], d["rotated"], d["color"], st, strict=True
            )
        ]

    @staticmethod
    def from_bricks(bricks: list[Brick], shape: tuple[int, ...]) -> Assembly:
        """An assembly holding ``bricks`` in their order (index i = ``bricks[i]``)."""
        from .connectivity import brick_arrays, label_lattice

        d = brick_arrays(BrickModel(list(bricks), shape))
        asm = Assembly(shape, lab=label_lattice(d, shape))
        for k in ("x", "y", "z", "nx", "ny", "h", "color"):
            setattr(asm, k, d[k].tolist())
        asm.alive = [True] * len(bricks)
        return asm


class Trial:
    """One try-change-then-undo on an :class:`Assembly` (see :func:`trial`)."""

    def __init__(self, saved: list[tuple[Any, ...]]):
        self.saved = saved
        self.new: list[int] = []  # ids of the bricks the change added
        self.keep = False  # set True to keep the change


@contextmanager
def trial(asm: Assembly, ids) -> Iterator[Trial]:
    """Try a change to ``asm`` that replaces bricks ``ids``: the body removes them, adds
    bricks (their ids go to ``t.new``) and sets ``t.keep``; unless it is kept (or when the
    body raises) the new bricks are removed and the old ones restored exactly."""
    saved = [(int(i), asm.x[i], asm.y[i], asm.z[i], asm.nx[i], asm.ny[i], asm.h[i]) for i in ids]
    t = Trial(saved)
    try:
        yield t
    finally:
        if not t.keep:
            asm.remove(t.new)
            asm.restore(saved)


# --------------------------------------------------------------------------------------------
# Stage 2: layer by layer with the local improvement pass
# --------------------------------------------------------------------------------------------


def _variants(z: int, height: int, seed: int, n: int) -> list[tuple[int, int, int]]:
    """Tiling variants ``(axis, offset, phase)`` for a unit, preferred first."""
    axis = unit_parity(z, height)
    layer = z // height
    # phase flips every second layer of the same direction; seed rotates the preference
    # plates: courses of three plates share a phase, so thin walls can stack into bricks
    base_phase = ((layer // (3 if height == 1 else 2)) + seed) % 2
    base_off = ((layer // 2) + seed // 2) % 2
    vs = [
        (axis, base_off, base_phase),
        (axis, 1 - base_off, base_phase),
        (axis, base_off, 1 - base_phase),
        (axis, 1 - base_off, 1 - base_phase),
    ]
    return vs[:n]


def _links(plane: np.ndarray, other: np.ndarray | None) -> int:
    """Distinct (brick, brick) pairs between a painted plane and a neighbouring label plane."""
    if other is None:
        return 0
    m = (plane >= 0) & (other >= 0)
    if not m.any():
        return 0
    a = plane[m]
    b = other[m]
    return len(np.unique(a * (int(b.max()) + 1) + b))


#: How many links one more brick must buy to be worth it when choosing a layer tiling: high,
#: so fewer parts come first and links decide between tilings of (nearly) equal count.
BRICK_WEIGHT = 64.0


def _score(rects: Rects, shape2d, below, above) -> float:
    plane = rects.paint(shape2d)
    links = _links(plane, below) + _links(plane, above)
    return links - BRICK_WEIGHT * len(rects)


def merge_layer(
    cells: np.ndarray,
    z: int,
    height: int,
    parity: int | None = None,
    seed: int = 0,
    below: np.ndarray | None = None,
    above: np.ndarray | None = None,
    variants: int = 4,
) -> list[Brick]:
    """Merge one layer of cells into bricks (the public per-layer entry point).

    ``cells`` is a 2-D int array ``[x, y]``: -1 for cells to leave alone, else the LDraw colour.
    ``z`` is the layer's bottom in plates and ``height`` its height in plates (1 plates,
    3 bricks). ``parity`` (0: long sides along x, 1: along y) defaults to the alternating
    rule :func:`unit_parity`. ``below``/``above`` are optional label planes (any int id per
    cell, -1 none) of the layers just under and over; when given, the variant with the most
    connections to them per brick is chosen among ``variants`` tilings. Deterministic for a
    seed. The bricks cover exactly the non-negative cells, each with that cell's colour.
    """
    cells = np.asarray(cells)
    if cells.ndim != 2:
        raise ValueError(f"cells must be a 2-D [x, y] array, got shape {cells.shape}")
    if height not in (1, PLATES_PER_BRICK):
        raise ValueError(f"height must be 1 (plates) or 3 (bricks), got {height}")
    vs = _variants(z, height, seed, max(1, variants))
    if parity is not None:
        vs = [(int(parity), o, p) for _, o, p in vs]
    rects = _best_tiling(cells, height, vs, below, above)
    asm = Assembly((cells.shape[0], cells.shape[1], z + height))
    asm.add(rects, z, height)
    return asm.to_bricks()


def _best_tiling(cells, height, vs, below, above) -> Rects:
    stack = np.asarray(cells)[None]
    cands = [tile_layers(stack, height, a, o, p)[0] for a, o, p in vs]
    if len(cands) == 1:
        return cands[0]
    scores = [_score(r, stack.shape[1:], below, above) for r in cands]
    return cands[int(np.argmax(scores))]


def build(
    cells: np.ndarray, brick_types: str = "mixed", seed: int = 0, variants: int = 4
) -> Assembly:
    """Stages 1 and 2: units, then per-layer tiling bottom-up choosing the best variant.

    All units of one height are tiled at once in every variant (vectorised); the choice per
    unit is then made bottom-up, by links to the already-chosen layer below per brick.
    """
    cells = np.asarray(cells, dtype=np.int64)
    asm = Assembly(cells.shape, allow_plates=brick_types != "bricks")
    units = sorted(plan_units(cells, brick_types), key=lambda u: (u[0], -u[1]))
    nvar = max(1, variants)
    tilings: dict[int, list[Rects]] = {}  # unit index -> rects per variant
    for h in sorted({u[1] for u in units}):
        idx = [i for i, u in enumerate(units) if u[1] == h]
        stack = np.stack([units[i][2] for i in idx])
        vs = [_variants(units[i][0], h, seed, nvar) for i in idx]
        for k in range(nvar):
            axes = np.array([v[k][0] for v in vs])
            offs = np.array([v[k][1] for v in vs])
            phs = np.array([v[k][2] for v in vs])
            for i, r in zip(idx, tile_layers(stack, h, axes, offs, phs), strict=True):
                tilings.setdefault(i, []).append(r)
        if nvar > 1:  # plus whole-parts-first variants (both row pairings)
            axes = np.array([v[0][0] for v in vs])
            phs = np.array([v[0][2] for v in vs])
            for off in (0, 1):
                offs = np.full(len(vs), off)
                rs = tile_layers(stack, h, axes, offs, phs, True)
                for i, r in zip(idx, rs, strict=True):
                    tilings[i].append(r)
    small_model = int((cells >= 0).sum()) <= GREEDY_CANDIDATE_MAX_MODEL
    for i, (_, h, c2) in enumerate(units):
        if nvar > 1 and small_model and int((c2 >= 0).sum()) <= GREEDY_CANDIDATE_MAX_CELLS:
            tilings[i].append(greedy_tiling(c2, h))
    shape2d = cells.shape[:2]
    for i, (z, h, _) in enumerate(units):
        cands = tilings[i]
        if len(cands) == 1:
            best = cands[0]
        else:
            # links can only decide between tilings within a few parts of the fewest
            counts = [len(r) for r in cands]
            near = [r for r, c in zip(cands, counts, strict=True) if c <= min(counts) + 2]
            if len(near) == 1:
                best = near[0]
            else:
                below = asm.lab[:, :, z - 1] if z > 0 else None
                scores = [_score(r, shape2d, below, None) for r in near]
                best = near[int(np.argmax(scores))]
        asm.add(best, z, h)
    return asm


# --------------------------------------------------------------------------------------------
# Stage 3: re-merge around breaks
# --------------------------------------------------------------------------------------------


@dataclass
class ConnectResult:
    connected: bool  # bricks form as many components as the cells do
    n_components: int
    n_cell_components: int
    fixes: int
    message: str
    demoted: int = 0  # bricks turned into plates by the fallback
    timed_out: bool = False  # stopped at ``time_budget`` before reaching ``n_target``


def cell_components(occ: np.ndarray) -> int:
    """6-connected components of a bool lattice."""
    return int(ndimage.label(occ)[1])


def colour_bound(cells: np.ndarray) -> int:
    """The fewest brick components a colour-respecting tiling of ``cells`` can have.

    Bricks join only by stacking, and one brick holds cells of one colour: so cells can end
    up in one piece only through vertical contacts (any colours) and same-colour runs
    inside a layer. Components of that cell graph bound what any merge can reach.
    """
    occ = cells >= 0
    n = occ.size
    idx = np.arange(n).reshape(occ.shape)
    rows, cols = [], []
    for ax in range(3):
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[ax], b[ax] = slice(None, -1), slice(1, None)
        sa, sb = tuple(a), tuple(b)
        m = occ[sa] & occ[sb]
        if ax < 2:
            m &= cells[sa] == cells[sb]
        rows.append(idx[sa][m])
        cols.append(idx[sb][m])
    r, c = np.concatenate(rows), np.concatenate(cols)
    g = coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(n, n))
    _, lab = connected_components(g, directed=False)
    return len(np.unique(lab[occ.ravel()]))


def _seams(asm: Assembly, comp: np.ndarray) -> np.ndarray:
    """Breaks: rows ``(b1, b2, x1, y1, x2, y2, p)`` (:func:`connectivity.seams`)."""
    return connectivity.seams(asm.lab, comp)


def _bridges(asm: Assembly, ids, cell1, cell2, comp, need) -> list[Rects]:
    """Catalogue footprints in the region of bricks ``ids`` (one unit) covering both cells.

    Only those that touch (above or below) every component in ``need``; largest first.
    """
    i0 = ids[0]
    z, h, color = asm.z[i0], asm.h[i0], asm.color[i0]
    X, Y, npl = asm.shape
    region = np.zeros((X, Y), dtype=bool)
    for i in ids:
        xs, ys, _ = asm.cells_of(i)
        region[xs, ys] = True
    (x1, y1), (x2, y2) = cell1, cell2
    lo_x, hi_x, lo_y, hi_y = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
    sizes = [
        (nx, ny)
        for nx in range(1, _MAXDIM)
        for ny in range(1, _MAXDIM)
        if _LUT_PART[h, nx, ny] >= 0
    ]
    sizes.sort(key=lambda s: (-s[0] * s[1], s))
    out: list[Rects] = []
    below = asm.lab[:, :, z - 1] if z > 0 else None
    above = asm.lab[:, :, z + h] if z + h < npl else None
    ncomp = len(comp)
    for nx, ny in sizes:
        if nx < hi_x - lo_x + 1 or ny < hi_y - lo_y + 1:
            continue
        for x0 in range(hi_x - nx + 1, lo_x + 1):
            for y0 in range(hi_y - ny + 1, lo_y + 1):
                if x0 < 0 or y0 < 0 or x0 + nx > X or y0 + ny > Y:
                    continue
                if not region[x0 : x0 + nx, y0 : y0 + ny].all():
                    continue
                touched: set[int] = set()
                for plane in (below, above):
                    if plane is not None:
                        v = np.unique(plane[x0 : x0 + nx, y0 : y0 + ny])
                        v = v[(v >= 0) & (v < ncomp)]
                        touched.update(comp[v].tolist())
                if need <= touched:
                    one = np.array([1])
                    out.append(Rects(one * x0, one * y0, one * nx, one * ny, one * color))
    return out


def _try_bridge(asm, ids, bridge: Rects, n_before: int) -> bool:
    """Replace ``ids`` (one unit) by ``bridge`` plus a tiling of the rest; keep if better."""
    i0 = ids[0]
    z, h = asm.z[i0], asm.h[i0]
    X, Y, _ = asm.shape
    c = np.full((X, Y), -1, dtype=np.int64)
    for i in ids:
        xs, ys, _ = asm.cells_of(i)
        c[xs, ys] = asm.color[i]
    c[bridge.x[0] : bridge.x[0] + bridge.nx[0], bridge.y[0] : bridge.y[0] + bridge.ny[0]] = -1
    with trial(asm, ids) as t:
        asm.remove(ids)
        t.new += asm.add(bridge, z, h).tolist()
        rest = tile_layer(c, h, unit_parity(z, h), 0, 0)
        t.new += asm.add(rest, z, h).tolist()
        t.keep = asm.components()[0] < n_before
    return t.keep


def _neighbours(asm: Assembly, ids) -> set[int]:
    """Bricks horizontally adjacent to ``ids`` in the same plate layers."""
    return connectivity.neighbours(asm.lab, (asm.x, asm.y, asm.z, asm.nx, asm.ny, asm.h), ids)


def _retile(asm: Assembly, ids, demote: bool, variant: int, seed: int) -> list[int]:
    """Replace bricks ``ids`` by a new tiling of their cells; return the new brick ids.

    Bricks are grouped by (z, height). With ``demote`` bricks become plates (three layers).
    ``variant`` picks which tiling variant each layer uses (rotating through the 8 choices).
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for i in ids:
        h = asm.h[i]
        if demote and h == PLATES_PER_BRICK:
            for k in range(h):
                groups.setdefault((asm.z[i] + k, 1), []).append(i)
        else:
            groups.setdefault((asm.z[i], h), []).append(i)
    X, Y, _ = asm.shape
    planes = {}
    for (z, h), members in groups.items():
        c = np.full((X, Y), -1, dtype=np.int64)
        for i in members:
            xs, ys, _ = asm.cells_of(i)
            c[xs, ys] = asm.color[i]
        planes[(z, h)] = c
    asm.remove(ids)
    new: list[int] = []
    for (z, h), c in sorted(planes.items()):
        allv = [
            (a, o, p)
            for a in (unit_parity(z, h), 1 - unit_parity(z, h))
            for o in (0, 1)
            for p in (0, 1)
        ]
        k = (variant + z + seed) % len(allv) if h == 1 and demote else variant % len(allv)
        axis, off, ph = allv[k]
        rects = tile_layer(c, h, axis, off, ph)
        new.extend(asm.add(rects, z, h).tolist())
    return new


def connect(
    asm: Assembly,
    n_target: int,
    seed: int = 0,
    max_fixes: int = 2000,
    time_budget: float = 20.0,
) -> ConnectResult:
    """Stage 3: re-merge around breaks until bricks form ``n_target`` components.

    A *break* is two horizontally adjacent bricks in different components. Breaks inside
    one layer between same-coloured bricks are tried first (smallest pieces first).
    Stages: (1) a part straddling the break that touches both sides; (2) for at most
    :data:`TARGETED_TRIES` breaks, re-tile the two bricks (then with their same-layer
    neighbours) in other variants and, when plates are allowed, demote them to staggered
    plates; (3) demote every brick of the smaller pieces (then also their neighbours) to
    plates and bridge again; (4) stage 2 without the bound, until ``time_budget`` runs out.
    A change is kept only when the number of components drops; otherwise it is undone
    exactly. ``demoted`` counts the bricks demoted in stage 3.
    """
    t0 = budget_clock()
    n, comp = asm.components()
    fixes = 0
    deadline = t0 + time_budget
    demoted = 0
    # cheap first: parts straddling breaks only
    n, comp, fixes = _connect_loop(asm, n, comp, n_target, seed, max_fixes, deadline, False)
    if n > n_target:
        # then a bounded number of local re-tilings and demotions of single breaks, which
        # cost fewer parts than demoting whole pieces
        n, comp, f2 = _connect_loop(
            asm, n, comp, n_target, seed, max_fixes, deadline, True, max_tries=TARGETED_TRIES
        )
        fixes += f2
    for widen in (False, True):
        if n <= n_target or not asm.allow_plates or budget_clock() >= deadline:
            break
        # Fallback: demote the bricks of the smaller pieces (then also the bricks next to
        # them) to staggered plates, and bridge again at plate resolution.
        sizes = np.bincount(comp[comp >= 0])
        main = int(np.argmax(sizes))
        h = np.asarray(asm.h)
        minor = np.flatnonzero((comp >= 0) & (comp != main))
        near = set(minor.tolist())
        if widen:
            near |= _neighbours(asm, minor.tolist())
        ids = sorted(i for i in near if h[i] == PLATES_PER_BRICK and asm.alive[i])
        if ids:
            _retile(asm, ids, True, 0, seed)
            demoted += len(ids)
            fixes += 1
            n, comp = asm.components()
            n, comp, fixes2 = _connect_loop(
                asm, n, comp, n_target, seed, max_fixes, deadline, False
            )
            fixes += fixes2
    if n > n_target:
        # expensive: re-tile regions in other variants, demote bricks around single breaks
        n, comp, fixes2 = _connect_loop(asm, n, comp, n_target, seed, max_fixes, deadline, True)
        fixes += fixes2
    ok = n <= n_target
    timed_out = not ok and budget_clock() >= deadline
    if ok:
        msg = "bricks are connected" if n_target == 1 else f"bricks form {n} pieces like the voxels"
    elif timed_out:
        msg = (
            f"could not connect the bricks before the time budget ran out: {n} separate "
            f"pieces where the voxels form {n_target} (a shape this fragmented, e.g. a "
            "checkerboard or a random fill, has too many breaks to bridge in time)"
        )
    else:
        msg = (
            f"could not connect the bricks: {n} separate pieces where the voxels form "
            f"{n_target} (parts one layer thick cannot be bridged"
            + ("" if asm.allow_plates else "; plates are disabled")
            + ")"
        )
    return ConnectResult(ok, n, n_target, fixes, msg, demoted, timed_out)


#: Breaks tried with the expensive local fixes before whole pieces are demoted to plates.
TARGETED_TRIES = 40


def _connect_loop(asm, n, comp, n_target, seed, max_fixes, deadline, full, max_tries=None):
    fixes = 0
    tries = 0
    failed: set[tuple[int, int]] = set()
    while n > n_target and fixes < max_fixes and budget_clock() < deadline:
        seams = _seams(asm, comp)
        sizes = np.bincount(comp[comp >= 0])
        z = np.asarray(asm.z)
        h = np.asarray(asm.h)
        col = np.asarray(asm.color)
        a, b = seams[:, 0], seams[:, 1]
        same = (z[a] == z[b]) & (h[a] == h[b]) & (col[a] == col[b])
        small = np.minimum(sizes[comp[a]], sizes[comp[b]])
        order = np.lexsort((b, a, small, ~same))
        progressed = False
        for b1, b2, x1, y1, x2, y2, _p in seams[order].tolist():
            if n <= n_target:
                break
            if (b1, b2) in failed or not (asm.alive[b1] and asm.alive[b2]):
                continue
            if comp[b1] == comp[b2]:
                continue
            if max_tries is not None:
                if tries >= max_tries:
                    return n, comp, fixes
                tries += 1
            if _fix(asm, [b1, b2], ((x1, y1), (x2, y2)), n, comp, seed, full):
                fixes += 1
                progressed = True
                n, comp = asm.components()
                continue  # the rest of this seam list is still mostly valid
            failed.add((b1, b2))
            if budget_clock() > deadline:
                break
        if not progressed:
            break
    return n, comp, fixes


def _touched_components(asm: Assembly, new: list[int], comp: np.ndarray) -> set[int]:
    """Old components of bricks directly above or below the new bricks."""
    out: set[int] = set()
    npl = asm.shape[2]
    ncomp = len(comp)
    for i in new:
        xs, ys, zs = asm.cells_of(i)
        for p in (zs.start - 1, zs.stop):
            if 0 <= p < npl:
                ids = np.unique(asm.lab[xs, ys, p])
                ids = ids[(ids >= 0) & (ids < ncomp)]
                out.update(comp[ids].tolist())
    out.discard(-1)
    return out


def _try(asm: Assembly, ids, demote: bool, variant: int, seed: int, n_before: int, comp) -> bool:
    """Apply a re-tiling; keep it if it lowers the component count, else undo."""
    removed = np.bincount(comp[np.asarray(ids)], minlength=int(comp.max()) + 1)
    sizes = np.bincount(comp[comp >= 0], minlength=len(removed))
    involved = {int(comp[i]) for i in ids}
    # components that keep bricks outside the region must be reached by the new bricks
    need = {c for c in involved if sizes[c] > removed[c]}
    with trial(asm, ids) as t:
        t.new = _retile(asm, ids, demote, variant, seed)
        touched = _touched_components(asm, t.new, comp)
        t.keep = need <= touched and len(touched) >= 1 and asm.components()[0] < n_before
    return t.keep


def _fix(asm: Assembly, pair: list[int], cells, n_before: int, comp, seed: int, full: bool) -> bool:
    b1 = pair[0]
    same_unit = asm.z[b1] == asm.z[pair[1]] and asm.h[b1] == asm.h[pair[1]]
    tries: list[tuple[list[int], bool]] = []
    if same_unit and asm.color[b1] == asm.color[pair[1]]:
        # a part straddling the break, touching both sides above or below
        nb = [
            i
            for i in _neighbours(asm, pair)
            if asm.z[i] == asm.z[b1] and asm.h[i] == asm.h[b1] and asm.color[i] == asm.color[b1]
        ]
        for region in (pair, sorted(set(pair) | set(nb))):
            removed = np.bincount(comp[np.asarray(region)], minlength=int(comp.max()) + 1)
            sizes = np.bincount(comp[comp >= 0], minlength=len(removed))
            need = {int(comp[i]) for i in region if sizes[comp[i]] > removed[comp[i]]}
            for br in _bridges(asm, region, cells[0], cells[1], comp, need)[:6]:
                if _try_bridge(asm, region, br, n_before):
                    return True
    if not full:
        return False
    if same_unit:
        tries.append((pair, False))
        nb = [i for i in _neighbours(asm, pair) if asm.z[i] == asm.z[b1] and asm.h[i] == asm.h[b1]]
        tries.append((sorted(set(pair) | set(nb)), False))
    if asm.allow_plates and any(asm.h[i] == PLATES_PER_BRICK for i in pair):
        tries.append((pair, True))
        tries.append((sorted(set(pair) | _neighbours(asm, pair)), True))
    for ids, demote in tries:
        for v in (0, 3, 5, 6):  # both axes x both phases
            if _try(asm, ids, demote, v, seed, n_before, comp):
                return True
    return False


# --------------------------------------------------------------------------------------------
# Re-merge a region of an existing model (for repair)
# --------------------------------------------------------------------------------------------


def remerge_region(
    model: BrickModel,
    bricks_to_replace: list[Brick],
    seed: int = 0,
    demote: bool = False,
    variant: int | None = None,
) -> BrickModel:
    """Return a new model in which ``bricks_to_replace`` are re-tiled.

    The cells of the given bricks (which must be in ``model``) are merged again, layer by
    layer, keeping their colours. With ``demote=True`` bricks become plates (three staggered
    plate layers), which bridges gaps a single brick layer cannot. With ``variant=None``
    the 8 tiling variants are tried and the one giving the fewest connected components, then
    the most links to neighbouring layers, is kept; an int picks one variant. Steps of the
    new bricks are set to the step of the layer they sit in (unchanged for others); call
    :func:`image2lego.lego.steps.assign_steps` afterwards for a fresh step numbering.
    """
    index = {b: i for i, b in enumerate(model.bricks)}
    missing = [b for b in bricks_to_replace if b not in index]
    if missing:
        raise ValueError(
            f"{len(missing)} brick(s) to replace are not in the model, e.g. {missing[0]}"
        )
    asm = Assembly.from_bricks(model.bricks, model.shape)
    ids = sorted({index[b] for b in bricks_to_replace})
    step_of_z: dict[int, int] = {}
    for b in model.bricks:
        step_of_z.setdefault(b.z, b.step)
    if variant is None:
        best = None
        for v in range(8):
            with trial(asm, ids) as t:  # never kept: only scored
                t.new = _retile(asm, ids, demote, v, seed)
                n, _ = asm.components()
                links = sum(len(e) for e in asm._edges.values())
                key = (n, -links, len(t.new), v)
            if best is None or key < best:
                best = key
        variant = best[3]  # type: ignore[index]
    _retile(asm, ids, demote, variant, seed)
    d = asm.arrays()
    alive = np.flatnonzero(np.asarray(asm.alive, dtype=bool))
    n_old = len(model.bricks)
    bricks = []
    for k, i in enumerate(alive.tolist()):
        step = model.bricks[i].step if i < n_old else step_of_z.get(int(d["z"][k]), 0)
        bricks.append(
            Brick(
                int(d["z"][k]),
                int(d["y"][k]),
                int(d["x"][k]),
                PART_IDS[d["part"][k]],
                bool(d["rotated"][k]),
                int(d["color"][k]),
                int(step),
            )
        )
    return model.derive(bricks)


def stack_plates(asm: Assembly) -> int:
    """Merge three identical stacked plates (same footprint and colour) into one brick.

    Bottom-up, wherever the catalogue has a brick of that footprint. This never breaks a
    connection: the middle plate touches only the other two, and the brick keeps the bottom
    plate's contacts below and the top plate's above. Returns the number of bricks made.
    """
    key = {}
    for b in range(len(asm.x)):
        if asm.alive[b] and asm.h[b] == 1:
            key[(asm.x[b], asm.y[b], asm.z[b], asm.nx[b], asm.ny[b], asm.color[b])] = b
    made = 0
    for k in sorted(key, key=lambda t: (t[2], t[0], t[1])):
        i = key.get(k)
        if i is None or not asm.alive[i]:
            continue
        x, y, z, nx, ny, c = k
        if _LUT_PART[PLATES_PER_BRICK, nx, ny] < 0:
            continue
        j = key.get((x, y, z + 1, nx, ny, c))
        m = key.get((x, y, z + 2, nx, ny, c))
        if j is None or m is None or not (asm.alive[j] and asm.alive[m]):
            continue
        asm.remove([i, j, m])
        for t in (k, (x, y, z + 1, nx, ny, c), (x, y, z + 2, nx, ny, c)):
            key.pop(t, None)
        one = np.array([1])
        asm.add(Rects(one * x, one * y, one * nx, one * ny, one * c), z, PLATES_PER_BRICK)
        made += 1
    return made


def coalesce(asm: Assembly) -> int:
    """Merge pairs of touching same-layer, same-colour bricks whose union is a catalogue part.

    The union brick touches everything either part touched, so connectivity can only gain.
    Every brick is tried once in a fixed order and every merged brick again, until nothing
    merges; returns the number of merges. (A dictionary walk: merges are few and local, so
    there is nothing to vectorise.)
    """
    at: dict[tuple[int, int, int, int, int], int] = {}
    for b in range(len(asm.x)):
        if asm.alive[b]:
            at[(asm.z[b], asm.h[b], asm.color[b], asm.x[b], asm.y[b])] = b
    merged = 0
    work = sorted(at, reverse=True)  # pop() takes the lowest key first
    while work:
        key = work.pop()
        i = at.get(key)
        if i is None or not asm.alive[i]:
            continue
        z, h, c, x, y = key
        nx, ny = asm.nx[i], asm.ny[i]
        for dx, dy in ((nx, 0), (0, ny)):
            j = at.get((z, h, c, x + dx, y + dy))
            if j is None or not asm.alive[j]:
                continue
            if dx and asm.ny[j] != ny or dy and asm.nx[j] != nx:
                continue
            ux, uy = (nx + asm.nx[j], ny) if dx else (nx, ny + asm.ny[j])
            if ux >= _MAXDIM or uy >= _MAXDIM or _LUT_PART[h, ux, uy] < 0:
                continue
            asm.remove([i, j])
            at.pop((z, h, c, x + dx, y + dy))
            one = np.array([1])
            at[key] = int(asm.add(Rects(one * x, one * y, one * ux, one * uy, one * c), z, h)[0])
            merged += 1
            work.append(key)  # try to grow the merged brick further
            break
    return merged


def surface_cells(occ: np.ndarray) -> np.ndarray:
    """Occupied cells a builder can see: with an empty (or outside) 6-neighbour."""
    return occ & ~ndimage.binary_erosion(occ, border_value=0)


def _visible_mismatch(asm: Assembly, cells: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """Per brick index: visible cells whose wanted colour differs from the brick's."""
    lab = asm.lab
    m = vis & (lab >= 0)
    col = np.asarray(asm.color, dtype=np.int64)
    bad = m & (col[np.maximum(lab, 0)] != cells)
    return np.bincount(lab[bad], minlength=len(asm.x))


def paint_majority(asm: Assembly, cells: np.ndarray) -> int:
    """Give each brick the most common colour of its visible cells (of all its cells when
    none is visible); returns how many visible cells now show another colour than asked.

    Used after a colour-blind merge: the bricks are laid out for connectivity, the colours
    follow the photo wherever a brick's visible faces agree.
    """
    vis = surface_cells(cells >= 0)
    for i in range(len(asm.x)):
        if not asm.alive[i]:
            continue
        sl = asm.cells_of(i)
        c = cells[sl]
        v = vis[sl]
        pick = c[v] if v.any() else c[c >= 0]
        vals, counts = np.unique(pick, return_counts=True)
        asm.color[i] = int(vals[np.argmax(counts)])
    return int(_visible_mismatch(asm, cells, vis).sum())


def restore_colours(asm: Assembly, cells: np.ndarray, time_budget: float = 5.0) -> int:
    """After :func:`paint_majority`: re-tile, in their cells' own colours, each brick whose
    visible cells show a wrong colour, wherever that leaves the bricks in no more pieces.

    Bricks with the most wrong visible cells go first; each change is a :func:`trial`, undone
    when the component count rises. Returns the visible cells still showing another colour.
    """
    vis = surface_cells(cells >= 0)
    bad = _visible_mismatch(asm, cells, vis)
    n_before, _ = asm.components()
    deadline = budget_clock() + time_budget
    for i in np.argsort(-bad, kind="stable").tolist():
        if bad[i] == 0 or budget_clock() > deadline:
            break
        if not asm.alive[i]:
            continue
        xs, ys, zs = asm.cells_of(i)
        block = cells[xs, ys, zs]
        h = asm.h[i]
        plates = h == 1 or not (block == block[:, :, :1]).all()
        if plates and h > 1 and not asm.allow_plates:
            continue
        with trial(asm, [i]) as t:
            asm.remove([i])
            units = [(p, 1) for p in range(zs.start, zs.stop)] if plates else [(zs.start, h)]
            for z, hh in units:
                c = np.full(asm.shape[:2], -1, dtype=np.int64)
                c[xs, ys] = cells[xs, ys, z]
                rects = tile_layer(c, hh, unit_parity(z, hh), 0, 0)
                t.new += asm.add(rects, z, hh).tolist()
            t.keep = asm.components()[0] <= n_before
    return int(_visible_mismatch(asm, cells, vis).sum())

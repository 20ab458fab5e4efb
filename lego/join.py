"""Join the floating pieces of a voxel grid instead of dropping them (issue #17, item 2).

Bricks hold together only where cells touch, so a piece of the voxels that touches nothing
(a chair seat predicted one layer above its legs, a wing beside a fuselage) makes a model
that cannot be built. :func:`join_pieces` adds the fewest cells that fix that:

* **bridge**: when another piece is within ``max_bridge`` cells (through empty cells, face
  to face), the shortest path of empty cells between them is filled; among equally short
  paths the one that ends on the largest piece, then the most vertical one (cells that stack
  make stud connections; a sideways run must be spanned by a brick), is taken;
* **support**: when nothing is that near and the piece does not reach the ground, a 1x1
  column is stood under it, straight down to the ground or to the first cell below it
  (the shortest such column; among those the one nearest under its centre of mass);
* a piece that reaches the ground and has nothing near stays as it is (it stands on the
  baseplate);
* ``speck_cells``: pieces smaller than that are removed instead (reconstruction noise);
  0 (the default) removes nothing.

Every change is one :class:`Addition` in the :class:`JoinReport` (what, how many cells, and
where, in voxel coordinates), so the report can say what was added and the viewer can
highlight it. Pure numpy/scipy; deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import ndimage

from .bricks import BrickModel
from .voxels import validate_grid

#: Bridges are at most this share of the object's largest extent long (and at least
#: :data:`MIN_BRIDGE` cells): a gap wider than that is not a gap in one object.
BRIDGE_FRACTION = 0.1
MIN_BRIDGE = 3
#: Pieces handled per call at most (each costs a labelling and a local search).
MAX_PIECES = 64

_SIX = ndimage.generate_binary_structure(3, 1)
_STEPS = ((0, 0, -1), (0, 0, 1), (-1, 0, 0), (1, 0, 0), (0, -1, 0), (0, 1, 0))  # vertical first


@dataclass(frozen=True)
class Addition:
    """One change: ``kind`` ``"bridge"`` / ``"support"`` (``cells`` added) or ``"speck"``
    (``cells`` removed). ``at`` is the piece's cell the change starts from, ``to`` where it
    ends (a cell of another piece, or ``z = -1``: the ground), both ``(x, y, z)`` voxels;
    ``piece_cells`` is the size of the piece it holds (or removes)."""

    kind: Literal["bridge", "support", "speck"]
    cells: int
    at: tuple[int, int, int]
    to: tuple[int, int, int]
    piece_cells: int

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "cells": self.cells,
            "at": list(self.at),
            "to": list(self.to),
            "piece_cells": self.piece_cells,
        }

    def describe(self) -> str:
        x, y, z = self.at
        if self.kind == "speck":
            return f"removed a floating speck of {self.cells} cell(s) at ({x}, {y}, {z})"
        what = "bridge" if self.kind == "bridge" else "support column"
        onto = "the ground" if self.to[2] < 0 else f"({self.to[0]}, {self.to[1]}, {self.to[2]})"
        return (
            f"{what} of {self.cells} cell(s) from ({x}, {y}, {z}) to {onto} holds a piece "
            f"of {self.piece_cells} cell(s)"
        )


@dataclass
class JoinReport:
    """What :func:`join_pieces` did. ``added`` marks the cells it added (bool, the grid's
    shape); ``pieces_before``/``pieces_after`` count 6-connected pieces."""

    pieces_before: int
    pieces_after: int
    additions: list[Addition] = field(default_factory=list)
    added: np.ndarray | None = None

    @property
    def added_cells(self) -> int:
        return sum(a.cells for a in self.additions if a.kind != "speck")

    @property
    def removed_cells(self) -> int:
        return sum(a.cells for a in self.additions if a.kind == "speck")

    def count(self, kind: str) -> int:
        return sum(a.kind == kind for a in self.additions)

    def headline(self) -> str:
        """One line: what was added (or removed) to hold the floating pieces."""
        parts = []
        for kind, name in (("bridge", "bridge(s)"), ("support", "support column(s)")):
            if self.count(kind):
                parts.append(f"{self.count(kind)} {name}")
        out = []
        if parts:
            out.append(
                f"added {self.added_cells} cell(s) to hold floating pieces: " + ", ".join(parts)
            )
        if self.count("speck"):
            out.append(f"removed {self.count('speck')} speck(s) ({self.removed_cells} cell(s))")
        line = "; ".join(out) or "no floating pieces"
        return f"{line} ({self.pieces_before} -> {self.pieces_after} piece(s) of voxels)"

    def to_dict(self) -> dict:
        return {
            "pieces_before": self.pieces_before,
            "pieces_after": self.pieces_after,
            "bridges": self.count("bridge"),
            "supports": self.count("support"),
            "specks_removed": self.count("speck"),
            "added_cells": self.added_cells,
            "removed_cells": self.removed_cells,
            "additions": [a.to_dict() for a in self.additions],
        }


def default_max_bridge(grid: np.ndarray) -> int:
    """:data:`BRIDGE_FRACTION` of the occupied box's largest extent, at least
    :data:`MIN_BRIDGE` cells."""
    nz = np.nonzero(grid)
    if not len(nz[0]):
        return MIN_BRIDGE
    extent = max(int(a.max() - a.min()) + 1 for a in nz)
    return max(MIN_BRIDGE, int(np.ceil(BRIDGE_FRACTION * extent)))


def _box(mask: np.ndarray, pad: int) -> tuple[slice, ...]:
    nz = np.nonzero(mask)
    return tuple(
        slice(max(int(a.min()) - pad, 0), min(int(a.max()) + pad + 1, s))
        for a, s in zip(nz, mask.shape, strict=True)
    )


def _bridge(
    occ: np.ndarray, piece: np.ndarray, sizes: np.ndarray, lab: np.ndarray, max_cells: int
) -> tuple[list[tuple[int, int, int]], tuple[int, int, int], tuple[int, int, int]] | None:
    """Shortest path of at most ``max_cells`` empty cells from ``piece`` to another
    occupied cell (6-connected): ``(path cells, start cell of the piece, end cell)``."""
    box = _box(piece, max_cells + 1)
    off = np.array([s.start for s in box])
    p, o, lb = piece[box], occ[box], lab[box]
    other = o & ~p
    dist = np.full(p.shape, -1, np.int32)
    dist[p] = 0
    front = p
    for step in range(1, max_cells + 2):
        grown = ndimage.binary_dilation(front, _SIX) & (dist < 0)
        hit = grown & other
        if hit.any():
            # end on the largest piece, then the lowest cell
            hx, hy, hz = np.nonzero(hit)
            size = sizes[lb[hx, hy, hz]]
            k = int(np.lexsort((hy, hx, hz, -size))[0])
            end = (int(hx[k]), int(hy[k]), int(hz[k]))
            path, cur = [], end
            for want in range(step - 1, -1, -1):
                for dx, dy, dz in _STEPS:
                    c = (cur[0] + dx, cur[1] + dy, cur[2] + dz)
                    if all(0 <= v < n for v, n in zip(c, p.shape, strict=True)) and (
                        dist[c] == want
                    ):
                        cur = c
                        break
                if want:
                    path.append(cur)
            start = cur

            def shift(c) -> tuple[int, int, int]:
                x, y, z = (int(v) for v in np.add(c, off))
                return x, y, z

            return [shift(c) for c in path], shift(start), shift(end)
        empty = grown & ~o
        if not empty.any():
            return None
        dist[empty] = step
        front = empty
    return None


def _support(
    occ: np.ndarray, piece: np.ndarray, ground: int
) -> tuple[list[tuple[int, int, int]], tuple[int, int, int], tuple[int, int, int]]:
    """The shortest 1x1 column under ``piece`` down to the first occupied cell or the ground
    (z = ``ground``); ties go to the column nearest under the piece's centre of mass."""
    xs, ys, zs = np.nonzero(piece)
    cx, cy = xs.mean(), ys.mean()
    best = None
    for x, y in {(int(a), int(b)) for a, b in zip(xs, ys, strict=True)}:
        z_low = int(np.flatnonzero(piece[x, y])[0])
        below = np.flatnonzero(occ[x, y, :z_low])
        z_end = int(below[-1]) if len(below) else ground - 1
        length = z_low - z_end - 1
        key = (length, round(float(np.hypot(x - cx, y - cy)), 6), x, y)
        if best is None or key < best[0]:
            best = (key, x, y, z_low, z_end)
    assert best is not None
    _, x, y, z_low, z_end = best
    cells = [(x, y, z) for z in range(z_end + 1, z_low)]
    return cells, (x, y, z_low), (x, y, z_end if z_end >= ground else -1)


def join_pieces(
    grid, max_bridge: int | None = None, speck_cells: int = 0
) -> tuple[np.ndarray, JoinReport]:
    """Bridge, support or (specks only) remove the floating pieces of ``grid``.

    Returns the new bool grid (a copy; ``grid`` is never changed) and a :class:`JoinReport`.
    The ground is the lowest occupied layer (the converter crops the grid to it). Cells are
    only added, except pieces of fewer than ``speck_cells`` cells, which are removed (never
    the largest piece). ``max_bridge`` defaults to :func:`default_max_bridge`.
    """
    occ = validate_grid(grid).copy()
    if isinstance(speck_cells, bool) or not isinstance(speck_cells, int | np.integer):
        raise TypeError(f"speck_cells must be an int, got {speck_cells!r}")
    if speck_cells < 0:
        raise ValueError(f"speck_cells must be >= 0, got {speck_cells}")
    if max_bridge is None:
        max_bridge = default_max_bridge(occ)
    elif isinstance(max_bridge, bool) or not isinstance(max_bridge, int | np.integer):
        raise TypeError(f"max_bridge must be an int, got {max_bridge!r}")
    elif max_bridge < 0:
        raise ValueError(f"max_bridge must be >= 0, got {max_bridge}")
    added = np.zeros(occ.shape, bool)
    lab, n0 = ndimage.label(occ, _SIX)
    report = JoinReport(pieces_before=int(n0), pieces_after=int(n0), added=added)
    if n0 <= 1:
        return occ, report

    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    main = int(np.argmax(sizes))
    for k in range(1, n0 + 1):
        if k != main and sizes[k] < speck_cells:
            piece = lab == k
            at = tuple(int(v[0]) for v in np.nonzero(piece))
            occ[piece] = False
            report.additions.append(Addition("speck", int(sizes[k]), at, at, int(sizes[k])))  # type: ignore[arg-type]
    ground = int(np.nonzero(occ.any(axis=(0, 1)))[0][0])

    settled: set[tuple[int, int, int]] = set()  # one cell of each piece left standing alone
    for _ in range(MAX_PIECES):
        lab, n = ndimage.label(occ, _SIX)
        if n <= 1:
            break
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        done = {int(lab[c]) for c in settled}
        # smallest open piece first: it is the one most likely to need holding (the largest
        # too may float, above a small grounded piece)
        open_ = [k for k in np.argsort(sizes, kind="stable") if k and k not in done]
        if not open_:
            break
        k = int(open_[0])
        piece = lab == k
        found = _bridge(occ, piece, sizes, lab, int(max_bridge))
        kind: Literal["bridge", "support"] = "bridge"
        if found is None:
            if piece[:, :, ground].any():  # stands on the ground by itself
                sx, sy, sz = (int(v[0]) for v in np.nonzero(piece))
                settled.add((sx, sy, sz))
                continue
            found = _support(occ, piece, ground)
            kind = "support"
        cells, at, to = found
        for c in cells:
            occ[c] = True
            added[c] = True
        report.additions.append(Addition(kind, len(cells), at, to, int(sizes[k])))
    report.pieces_after = int(ndimage.label(occ, _SIX)[1])
    return occ, report


def added_bricks(model: BrickModel) -> list[int]:
    """Indices of the bricks of ``model`` that fill a cell the build added (bridges and
    supports of :func:`join_pieces`, props of the repair): ``model.meta["added_cells"]``,
    lattice ``(x, y, plate)`` cells."""
    cells = model.meta.get("added_cells") if isinstance(model.meta, dict) else None
    if not cells or not len(model):
        return []
    from .connectivity import brick_arrays, label_lattice

    lab = label_lattice(brick_arrays(model), tuple(model.shape))
    c = np.asarray(cells, np.int64).reshape(-1, 3)
    inside = ((c >= 0) & (c < np.asarray(lab.shape))).all(axis=1)
    hit = lab[tuple(c[inside].T)]
    return sorted({int(i) for i in hit if i >= 0})


__all__ = ["Addition", "JoinReport", "added_bricks", "default_max_bridge", "join_pieces"]

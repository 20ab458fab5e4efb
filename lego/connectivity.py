"""Which bricks hold onto which.

Two bricks are connected when one sits directly on the other (``lower.top == upper.z``)
and their footprints overlap by at least one stud. From that graph we report connected
components, bricks not connected to the ground layer (``z == 0``) and articulation bricks
(whose removal splits a component).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components

from .bricks import BrickModel
from .catalogue import ALL_PARTS

_PIDS = {pid: i for i, pid in enumerate(ALL_PARTS)}
_LEN = np.array([p.length for p in ALL_PARTS.values()])
_WID = np.array([p.width for p in ALL_PARTS.values()])
_HGT = np.array([p.height for p in ALL_PARTS.values()])


def brick_arrays(model: BrickModel) -> dict[str, np.ndarray]:
    """Per-brick int arrays ``x, y, z, nx, ny, h, color`` in the model's order."""
    b = model.bricks
    pi = np.fromiter((_PIDS[k.part_id] for k in b), dtype=np.int64, count=len(b))
    rot = np.fromiter((k.rotated for k in b), dtype=bool, count=len(b))
    d = {
        "x": np.fromiter((k.x for k in b), dtype=np.int64, count=len(b)),
        "y": np.fromiter((k.y for k in b), dtype=np.int64, count=len(b)),
        "z": np.fromiter((k.z for k in b), dtype=np.int64, count=len(b)),
        "color": np.fromiter((k.color for k in b), dtype=np.int64, count=len(b)),
    }
    d["nx"] = np.where(rot, _WID[pi], _LEN[pi])
    d["ny"] = np.where(rot, _LEN[pi], _WID[pi])
    d["h"] = _HGT[pi]
    return d


#: The largest lattice a model may span: 256 × 256 studs and 1,024 plates (a 256³ grid at
#: the tallest scale), 512 MiB of int64 labels.
MAX_LATTICE_CELLS = 256 * 256 * 1024


def label_lattice(d: dict[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """``lab[x, y, plate]`` = index of the brick filling that cell, -1 where empty.

    Raises ``ValueError`` when two bricks overlap or a brick leaves ``shape``, or when the
    lattice is larger than :data:`MAX_LATTICE_CELLS` (a bounded-memory guard, issue #22).
    """
    shape = tuple(int(v) for v in shape)
    if len(shape) != 3 or min(shape) < 0 or np.prod(shape, dtype=float) > MAX_LATTICE_CELLS:
        raise ValueError(
            f"model lattice shape {shape} is over the limit of {MAX_LATTICE_CELLS} cells "
            "(256 × 256 studs × 1024 plates)"
        )
    lab = np.full(shape, -1, dtype=np.int64)
    if not len(d["x"]):
        return lab
    top = (d["x"] + d["nx"], d["y"] + d["ny"], d["z"] + d["h"])
    if (
        (d["x"] < 0).any()
        or (d["y"] < 0).any()
        or (d["z"] < 0).any()
        or any((t > s).any() for t, s in zip(top, shape, strict=True))
    ):
        raise ValueError(f"a brick lies outside the model's lattice {shape}")
    # One pass per brick shape and cell offset inside it: every step touches only the bricks
    # of that shape, so time and extra memory grow with the bricks, not with the lattice
    # (a per-cell index array of a 256³ solid was 42 M entries, several GB of temporaries).
    flat = lab.reshape(-1)
    sy, sz = shape[1] * shape[2], shape[2]
    base = d["x"] * sy + d["y"] * sz + d["z"]
    kind = (d["nx"] * 4096 + d["ny"]) * 4096 + d["h"]
    order = np.argsort(kind, kind="stable")
    kinds, starts = np.unique(kind[order], return_index=True)
    for g, lo in enumerate(starts):
        ids = order[lo : starts[g + 1] if g + 1 < len(starts) else len(order)]
        b = base[ids]
        k = int(kinds[g])
        nx, ny, h = k // 4096**2, (k // 4096) % 4096, k % 4096
        for dx in range(nx):
            for dy in range(ny):
                for dz in range(h):
                    flat[b + (dx * sy + dy * sz + dz)] = ids
    # an overlap writes some cell twice, so fewer cells are filled than the bricks' volume
    if np.count_nonzero(flat >= 0) != int((d["nx"] * d["ny"] * d["h"]).sum()):
        raise ValueError("bricks overlap: some lattice cell is filled by two bricks")
    return lab


def lattice_edges(lab: np.ndarray) -> np.ndarray:
    """Unique ``(lower, upper)`` brick pairs touching across a plate boundary."""
    a = lab[:, :, :-1]
    b = lab[:, :, 1:]
    m = (a >= 0) & (b >= 0) & (a != b)
    n = int(lab.max()) + 1 if lab.size else 1
    key = np.unique(a[m] * n + b[m])
    return np.stack([key // n, key % n], axis=1)


def seams(lab: np.ndarray, comp: np.ndarray) -> np.ndarray:
    """Breaks: horizontally adjacent lattice cells whose bricks are in different components
    (``comp[brick]``; the one seam finder of the merger and the repair).

    Returns unique rows ``(b1, b2, x1, y1, x2, y2, p)`` with ``b1 < b2``, one cell pair per
    brick pair (the first in scan order: x seams, then y seams).
    """
    cl = np.where(lab >= 0, comp[np.maximum(lab, 0)], -1)
    rows = []
    for ax in (0, 1):
        sl0 = tuple(slice(None, -1) if a == ax else slice(None) for a in range(3))
        sl1 = tuple(slice(1, None) if a == ax else slice(None) for a in range(3))
        c0, c1 = cl[sl0], cl[sl1]
        m = (c0 >= 0) & (c1 >= 0) & (c0 != c1)
        if m.any():
            x, y, p = np.nonzero(m)
            x2, y2 = (x + 1, y) if ax == 0 else (x, y + 1)
            rows.append(np.stack([lab[sl0][m], lab[sl1][m], x, y, x2, y2, p], axis=1))
    if not rows:
        return np.zeros((0, 7), dtype=np.int64)
    r = np.concatenate(rows)
    swap = r[:, 0] > r[:, 1]
    r[swap] = r[swap][:, [1, 0, 4, 5, 2, 3, 6]]
    _, first = np.unique(r[:, 0] * (len(comp) + 1) + r[:, 1], return_index=True)
    return r[np.sort(first)]


def neighbours(lab: np.ndarray, boxes, ids, vertical: bool = False) -> set[int]:
    """Bricks touching ``ids`` sideways in the same plate layers (and, with ``vertical``,
    directly above or below their footprints), ``ids`` themselves left out.

    ``boxes`` is ``(x, y, z, nx, ny, h)``: per-brick sequences indexed like ``lab``'s values
    (an :class:`~image2lego.lego.merge.Assembly`'s lists or :func:`brick_arrays`' arrays).
    """
    bx, by, bz, bnx, bny, bh = boxes
    X, Y, Z = lab.shape
    out: set[int] = set()
    for i in ids:
        x, y, z = int(bx[i]), int(by[i]), int(bz[i])
        x1, y1, z1 = x + int(bnx[i]), y + int(bny[i]), z + int(bh[i])
        out.update(np.unique(lab[max(x - 1, 0) : x1 + 1, max(y - 1, 0) : y1 + 1, z:z1]).tolist())
        if vertical:
            if z > 0:
                out.update(np.unique(lab[x:x1, y:y1, z - 1]).tolist())
            if z1 < Z:
                out.update(np.unique(lab[x:x1, y:y1, z1]).tolist())
    out.discard(-1)
    return out - {int(i) for i in ids}


def brick_graph(model: BrickModel) -> tuple[int, np.ndarray]:
    """``(n_bricks, edges)``: ``edges[k] = (i, j)`` indexes ``model.bricks``, ``i`` below ``j``.

    An edge means brick ``j`` sits on brick ``i`` (``i.top == j.z``) with overlapping
    footprints. Use :func:`to_networkx` for a networkx graph.
    """
    lab = label_lattice(brick_arrays(model), model.shape)
    return len(model.bricks), lattice_edges(lab)


def to_networkx(model: BrickModel):
    """The brick graph as a ``networkx.Graph`` whose nodes are indices into ``model.bricks``."""
    import networkx as nx

    n, e = brick_graph(model)
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(map(tuple, e.tolist()))
    return g


def _csr(n: int, e: np.ndarray) -> csr_matrix:
    if not len(e):
        return csr_matrix((n, n))
    rows = np.concatenate([e[:, 0], e[:, 1]])
    cols = np.concatenate([e[:, 1], e[:, 0]])
    return coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)).tocsr()


def articulation_points(g: csr_matrix) -> np.ndarray:
    """Vertices whose removal disconnects their component (iterative Tarjan).

    Hand-written because scipy has no articulation points and building a networkx graph of
    10^5 bricks costs more than the whole conversion; this walks the CSR arrays once.
    """
    n = g.shape[0]
    indptr, indices = g.indptr, g.indices
    disc = [-1] * n
    low = [0] * n
    is_art = [False] * n
    t = 0
    for root in range(n):
        if disc[root] != -1:
            continue
        disc[root] = low[root] = t
        t += 1
        children = 0
        stack = [(root, -1, indptr[root])]
        while stack:
            v, parent, i = stack[-1]
            if i < indptr[v + 1]:
                stack[-1] = (v, parent, i + 1)
                w = int(indices[i])
                if disc[w] == -1:
                    disc[w] = low[w] = t
                    t += 1
                    if v == root:
                        children += 1
                    stack.append((w, v, indptr[w]))
                elif w != parent:
                    if disc[w] < low[v]:
                        low[v] = disc[w]
            else:
                stack.pop()
                if stack:
                    u = stack[-1][0]
                    if low[v] < low[u]:
                        low[u] = low[v]
                    if u != root and low[v] >= disc[u]:
                        is_art[u] = True
        if children > 1:
            is_art[root] = True
    return np.flatnonzero(np.asarray(is_art, dtype=bool))


@dataclass
class ConnectivityReport:
    """Connectivity of a brick model; brick references are indices into ``model.bricks``."""

    n_components: int
    component_of: np.ndarray  # component id per brick (0 = the largest)
    ungrounded: list[int]  # bricks with no path to a brick on the ground (z == 0)
    articulation: list[int]  # bricks whose removal splits their component
    connected: bool  # exactly one component
    n_edges: int = 0
    articulation_done: bool = True  # False: ``articulation`` was not computed (left empty)

    def summary(self) -> dict:
        return {
            "n_components": int(self.n_components),
            "connected": bool(self.connected),
            "n_ungrounded": len(self.ungrounded),
            "n_articulation": len(self.articulation),
            "n_links": int(self.n_edges),
        }


#: The last analysis, keyed by a digest of the bricks' boxes and the lattice shape: a run asks
#: for the same model's connectivity several times (the stability check, the summary, Blender's
#: Stats), each a lattice of up to 67 M cells to label; a model whose bricks changed gets a
#: new digest, so a stale answer is never returned.
_last: tuple[bytes, ConnectivityReport] | None = None


def _digest(d: dict[str, np.ndarray], shape) -> bytes:
    h = hashlib.blake2b(np.asarray(tuple(shape), dtype=np.int64).tobytes(), digest_size=20)
    for k in ("x", "y", "z", "nx", "ny", "h"):
        h.update(np.ascontiguousarray(d[k], dtype=np.int64).tobytes())
    return h.digest()


def _copy(r: ConnectivityReport, articulation: bool) -> ConnectivityReport:
    return dataclasses.replace(
        r,
        component_of=r.component_of.copy(),
        ungrounded=list(r.ungrounded),
        articulation=list(r.articulation) if articulation else [],
    )


def analyze(model: BrickModel, articulation: bool = True) -> ConnectivityReport:
    """Components, ungrounded and (optionally) articulation bricks of ``model``."""
    global _last
    d = brick_arrays(model)
    key = _digest(d, model.shape)
    last = _last
    if last is not None and last[0] == key and (last[1].articulation_done or not articulation):
        return _copy(last[1], articulation)
    r = _analyze(model, d, articulation)
    _last = (key, r)
    return _copy(r, articulation)


def _analyze(model: BrickModel, d: dict[str, np.ndarray], articulation: bool) -> ConnectivityReport:
    n = len(model.bricks)
    lab = label_lattice(d, model.shape)
    e = lattice_edges(lab)
    del lab
    g = _csr(n, e)
    if n == 0:
        return ConnectivityReport(0, np.zeros(0, dtype=np.int64), [], [], False, 0, True)
    ncomp, comp = connected_components(g, directed=False)
    # renumber so component 0 is the largest (ties: lowest original label)
    sizes = np.bincount(comp, minlength=ncomp)
    order = np.lexsort((np.arange(ncomp), -sizes))
    rank = np.empty(ncomp, dtype=np.int64)
    rank[order] = np.arange(ncomp)
    comp = rank[comp]
    grounded_comps = np.unique(comp[d["z"] == 0])
    ungrounded = np.flatnonzero(~np.isin(comp, grounded_comps)).tolist()
    art = articulation_points(g).tolist() if articulation else []
    return ConnectivityReport(int(ncomp), comp, ungrounded, art, ncomp == 1, len(e), articulation)

"""Build steps: the order the instructions and the animation use.

One layer (all bricks whose bottom is at the same plate height ``z``) per step, bottom to
top. A layer with more than ``max_bricks_per_step`` bricks is split into spatially coherent
chunks by recursive halving along the longer side of its bricks' spread, so each step shows
one area of the layer. A brick that would hang in the air at its step (under an overhang,
held only by a brick above) is put on at the first step where it joins the grounded part
(:func:`defer_to_support`), so every intermediate model is one grounded piece;
:func:`image2lego.lego.stability.step_stability` checks each one with the equilibrium LP.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .bricks import Brick, BrickModel

DEFAULT_MAX_BRICKS_PER_STEP = 30


@dataclass
class Step:
    index: int
    bricks: list[Brick]
    parts: dict[tuple[str, int], int]  # (part_id, LDraw colour) -> count


def _check_max(max_bricks_per_step: int) -> None:
    if isinstance(max_bricks_per_step, bool) or not isinstance(
        max_bricks_per_step, int | np.integer
    ):
        raise TypeError(f"max_bricks_per_step must be an int, got {max_bricks_per_step!r}")
    if max_bricks_per_step < 1:
        raise ValueError(f"max_bricks_per_step must be >= 1, got {max_bricks_per_step}")


def _split(ids: np.ndarray, cx: np.ndarray, cy: np.ndarray, limit: int, out: list) -> None:
    if len(ids) <= limit:
        out.append(ids)
        return
    sx = cx[ids].max() - cx[ids].min()
    sy = cy[ids].max() - cy[ids].min()
    key = (cx, cy) if sx >= sy else (cy, cx)
    order = ids[np.lexsort((key[1][ids], key[0][ids]))]
    half = len(order) // 2
    _split(order[:half], cx, cy, limit, out)
    _split(order[half:], cx, cy, limit, out)


def step_indices(
    z: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    nx: np.ndarray,
    ny: np.ndarray,
    max_bricks_per_step: int = DEFAULT_MAX_BRICKS_PER_STEP,
) -> np.ndarray:
    """Step number per brick from brick arrays (the fast path used by the converter)."""
    _check_max(max_bricks_per_step)
    z = np.asarray(z)
    steps = np.zeros(len(z), dtype=np.int64)
    if not len(z):
        return steps
    cx = np.asarray(x) + np.asarray(nx) / 2.0
    cy = np.asarray(y) + np.asarray(ny) / 2.0
    order = np.argsort(z, kind="stable")
    zs = z[order]
    bounds = np.flatnonzero(np.diff(zs)) + 1
    s = 0
    for ids in np.split(order, bounds):
        chunks: list[np.ndarray] = []
        _split(ids, cx, cy, max_bricks_per_step, chunks)
        for c in chunks:
            steps[c] = s
            s += 1
    return steps


def defer_to_support(steps: np.ndarray, z: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Move every brick that would hang in the air when its step is built to the first
    step at which it joins the grounded part (a brick under an overhang is put on once the
    brick it hangs from is there: it is pressed on from below).

    ``edges`` are ``(lower, upper)`` pairs of touching bricks. In the returned order every
    intermediate model is one grounded piece per grounded component of the whole (bricks
    that never reach the ground keep their step). Steps left empty are dropped.
    """
    steps = np.asarray(steps, dtype=np.int64)
    n = len(steps)
    if not n:
        return steps.copy()
    z = np.asarray(z)
    nbr: list[list[int]] = [[] for _ in range(n)]
    for a, b in np.asarray(edges, dtype=np.int64).reshape(-1, 2).tolist():
        nbr[a].append(b)
        nbr[b].append(a)
    out = steps.copy()
    placed = np.zeros(n, dtype=bool)
    # bricks whose step has come and that are not placed yet: a waiting brick has no placed
    # neighbour (it is queued the moment one is placed), so each step starts from its own
    # bricks only; linear in bricks + edges, however many bricks never reach the ground
    waiting = np.zeros(n, dtype=bool)
    order = np.argsort(steps, kind="stable")
    bounds = np.flatnonzero(np.diff(steps[order])) + 1
    for ids in np.split(order, bounds):
        s = int(steps[ids[0]])
        waiting[ids] = True
        queue = [i for i in ids.tolist() if z[i] == 0 or any(placed[j] for j in nbr[i])]
        while queue:
            i = queue.pop()
            if placed[i]:
                continue
            placed[i] = True
            waiting[i] = False
            out[i] = s
            queue.extend(j for j in nbr[i] if waiting[j])
    return np.unique(out, return_inverse=True)[1].astype(np.int64)


def assign_steps(
    model: BrickModel, max_bricks_per_step: int = DEFAULT_MAX_BRICKS_PER_STEP
) -> BrickModel:
    """Return a copy of ``model`` whose bricks carry fresh step numbers, sorted by step:
    layer by layer (:func:`step_indices`), then :func:`defer_to_support` so that no
    intermediate model has a brick in the air."""
    from .connectivity import brick_graph

    b = model.bricks
    sizes = [k.size for k in b]
    zs = np.array([k.z for k in b], dtype=np.int64)
    st = step_indices(
        zs,
        np.array([k.x for k in b], dtype=np.int64),
        np.array([k.y for k in b], dtype=np.int64),
        np.array([s[0] for s in sizes], dtype=np.int64),
        np.array([s[1] for s in sizes], dtype=np.int64),
        max_bricks_per_step,
    )
    st = defer_to_support(st, zs, brick_graph(model)[1])
    new = [dataclasses.replace(k, step=int(s)) for k, s in zip(b, st, strict=True)]
    new.sort(key=lambda k: (k.step, k.z, k.y, k.x))
    meta = dict(model.meta)
    meta["max_bricks_per_step"] = max_bricks_per_step
    return model.derive(new, meta)


def build_steps(model: BrickModel) -> list[Step]:
    """Group the model's bricks by their ``step`` (as assigned), with per-step part counts."""
    by: dict[int, list[Brick]] = {}
    for k in model.bricks:
        by.setdefault(k.step, []).append(k)
    out = []
    for i, s in enumerate(sorted(by)):
        bricks = sorted(by[s], key=lambda k: (k.z, k.y, k.x))
        parts: dict[tuple[str, int], int] = {}
        for k in bricks:
            parts[(k.part_id, k.color)] = parts.get((k.part_id, k.color), 0) + 1
        out.append(Step(i, bricks, parts))
    return out

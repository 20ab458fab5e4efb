"""One piece from the octree's own probabilities: joins the floating pieces of a 32³ decision
to the main body through the cells the decoder nearly kept.

A thresholded grid often comes in several 6-connected pieces that the decoder *does* see as one
object: the gap between them is a cell or two whose logit lies just under the threshold (a thin
leg, a wing root). :func:`connect_pieces` keeps the main body (the largest piece), adds, for
every other piece reachable through cells with ``logit > threshold - margin``, the shortest
such path (most confident cells first), and drops the pieces that no path of near-kept cells
reaches (the decoder's own evidence says they float). Pure numpy/scipy; both runtimes call it
on their top-level logits (``tests/test_pieces.py``, ``benchmarks/eval_classes.py`` measures it).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: how far under the threshold (in logits) a cell may be and still bridge two pieces; measured
#: on the paired validation rows (MODEL_CARD.md, "One piece from the decoder's probabilities")
BRIDGE_MARGIN = 1.0

#: an unreachable piece this large (share of the grid's cells) is a real part, not a speck
KEEP_SHARE = 0.05

_SIX = ndimage.generate_binary_structure(3, 1)
_STEPS = ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))


def connect_pieces(
    logit: np.ndarray,
    threshold: float,
    margin: float = BRIDGE_MARGIN,
    keep_share: float = KEEP_SHARE,
    pruned: float | None = None,
) -> np.ndarray:
    """``logit`` (D, H, W) → bool grid ``logit > threshold`` made one 6-connected piece where
    the logits allow (see the module docstring); an unreachable piece holding at least
    ``keep_share`` of the cells is kept (left to :mod:`..lego.join`). A grid already in one
    piece (or empty) is returned unchanged. Cells at or below ``pruned`` (the decoder's logit
    for cells it never computed) are never kept, whatever the threshold."""
    if margin < 0:
        raise ValueError(f"bridge margin must be >= 0, got {margin}")
    logit = np.asarray(logit, dtype=np.float32)
    live = logit > pruned if pruned is not None else np.ones(logit.shape, dtype=bool)
    strong = (logit > threshold) & live
    lab, n = ndimage.label(strong, structure=_SIX)
    if n <= 1:
        return strong
    weak_lab, _ = ndimage.label((logit > threshold - margin) & live, structure=_SIX)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    main = lab == sizes.argmax()
    reach = weak_lab == weak_lab[main][0]  # main's component of the near-kept cells
    body = main.copy()
    rest = strong & reach & ~body
    while rest.any():
        path = _shortest_path(body, rest, reach, logit)
        body |= path
        # the pieces the path touched join the body
        touched = np.unique(lab[path & rest])
        body |= np.isin(lab, touched[touched > 0]) & rest
        rest &= ~body
    big = np.flatnonzero(sizes >= keep_share * strong.sum())
    return body | (np.isin(lab, big[big > 0]) & ~reach)


def _shortest_path(body: np.ndarray, goal: np.ndarray, allowed: np.ndarray, logit: np.ndarray):
    """Cells of a shortest 6-connected path inside ``allowed`` from ``body`` to the nearest
    ``goal`` cell (ends included), choosing the most confident cell at each step back."""
    dist = np.full(body.shape, -1, dtype=np.int32)
    dist[body] = 0
    front, d = body, 0
    while True:
        d += 1
        front = ndimage.binary_dilation(front, structure=_SIX) & allowed & (dist < 0)
        if not front.any():  # cannot happen: goal lies in body's component of allowed
            raise AssertionError("goal not reachable")
        dist[front] = d
        hit = front & goal
        if hit.any():
            break
    cells = np.argwhere(hit)
    cur = tuple(cells[np.argmax(logit[hit])])
    path = np.zeros(body.shape, dtype=bool)
    path[cur] = True
    shape = body.shape
    for k in range(d - 1, 0, -1):
        best, best_logit = None, -np.inf
        for s in _STEPS:
            nb = (cur[0] + s[0], cur[1] + s[1], cur[2] + s[2])
            if all(0 <= nb[i] < shape[i] for i in range(3)) and dist[nb] == k:
                if logit[nb] > best_logit:
                    best, best_logit = nb, logit[nb]
        assert best is not None
        cur = best
        path[cur] = True
    return path

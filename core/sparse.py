"""A truly sparse octree decoder in plain PyTorch (paper §2.2's sparse tensors, no extension).

:class:`SparseOctreeDecoder` runs the *same modules* (same parameters, same state-dict keys) as
:class:`.model.OctreeDecoder`, but every level holds only the coordinates ``(N, 4)`` =
``[batch, x, y, z]`` and features ``(N, C)`` of its live cells:

* the generative transposed convolution (kernel 2, stride 2) makes the 8 children of each kept
  cell (``feats @ W[:, :, dx, dy, dz]``, children at ``2 * parent + (dx, dy, dz)``);
* 3³ convolutions gather the 26 neighbours of each cell by coordinate (sorted keys +
  ``searchsorted``); a neighbour that is not live contributes nothing;
* 1³ convolutions and the heads are per-cell matrix products, BatchNorm is per channel over the
  live cells;
* pruning keeps the cells whose logit passes the threshold (or the target's occupied cells when
  teacher-forced), and only their children exist at the next level.

Time and memory therefore grow with the number of occupied cells, not with res³
(``benchmarks/bench_sparse.py`` measures both against the dense path at 32³/64³/128³).

Parity with the dense path. In eval mode this decoder gives the dense decoder's logits on every
live cell (float rounding aside; ``tests/test_sparse.py``) and the dense path's
:data:`.model.PRUNED_LOGIT` elsewhere. One detail of the dense emulation is reproduced on
purpose: inside a *bottleneck* branch (1³ → BN → ELU → 3³ …) the dense tensor holds
``ELU(BN(0))`` - a constant, not zero - at pruned cells, and the 3³ convolution sees it.
``absent="dense"`` (the default, right for weights trained on the dense path, i.e. the shipped
ones) feeds that constant for in-grid neighbours that are not live; ``absent="zero"`` is the
plain sparse-tensor semantics (what MinkowskiEngine computes; weights trained with
``training/minkowski.py`` record it in their configuration as ``absent_neighbours``).

In training mode BatchNorm statistics are taken over the live cells only (a sparse engine's
semantics); the dense path's statistics include the pruned zeros, so *training* the two paths
is not bit-identical - inference with given weights is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .model import PRUNED_LOGIT, OctreeDecoder, head_resolutions

ABSENT_MODES = ("dense", "zero")

# child offsets in the order of ConvTranspose3d's kernel (dx, dy, dz), dx slowest
_CHILD = torch.tensor([[dx, dy, dz] for dx in (0, 1) for dy in (0, 1) for dz in (0, 1)])
# 3³ neighbour offsets in Conv3d's kernel order (weight[:, :, i, j, k] reads p + (i-1, j-1, k-1))
_NEIGH = torch.tensor([[i - 1, j - 1, k - 1] for i in range(3) for j in range(3) for k in range(3)])


@dataclass
class SparseLevel:
    """One decoder level: live cells and their occupancy logits.

    ``coords`` (N, 4) int64 ``[batch, x, y, z]`` sorted by key; ``logits`` (N,)."""

    res: int
    coords: torch.Tensor
    logits: torch.Tensor

    def to_dense(self, batch: int, fill: float = PRUNED_LOGIT) -> torch.Tensor:
        """(B, 1, r, r, r) logits, ``fill`` at cells that are not live (the dense layout)."""
        r = self.res
        out = self.logits.new_full((batch, 1, r, r, r), fill)
        c = self.coords
        out[c[:, 0], 0, c[:, 1], c[:, 2], c[:, 3]] = self.logits
        return out

    def occupied(self, batch: int, threshold: float = 0.0) -> np.ndarray:
        """(B, r, r, r) bool: live cells whose logit is above ``threshold``."""
        r = self.res
        out = np.zeros((batch, r, r, r), dtype=bool)
        c = self.coords[self.logits > threshold].cpu().numpy()
        out[c[:, 0], c[:, 1], c[:, 2], c[:, 3]] = True
        return out


def _keys(coords: torch.Tensor, res: int) -> torch.Tensor:
    b, x, y, z = coords.unbind(1)
    return ((b * res + x) * res + y) * res + z


class Neighbours:
    """Neighbour lookup by coordinate on one level (cells sorted by key): for an offset,
    the row of ``coords + offset`` - its row if live, ``N`` if inside the grid but not live,
    ``N + 1`` if outside. Keys are ``((b·R + x)·R + y)·R + z``; a neighbour's key is the
    cell's key plus a constant, so each query is one ``searchsorted`` over the sorted keys
    (O(N log N), no res³ table)."""

    def __init__(self, coords: torch.Tensor, res: int):
        self.n = coords.shape[0]
        self.res = res
        big = coords.shape[0] == 0 or int(coords[-1, 0] + 1) * res**3 >= 2**31
        self.dtype = torch.long if big else torch.int32
        self.keys = _keys(coords, res).to(self.dtype)
        xyz = coords[:, 1:]
        self.lo = [xyz[:, a] > 0 for a in range(3)]  # room for a -1 step
        self.hi = [xyz[:, a] < res - 1 for a in range(3)]  # room for a +1 step

    def index(self, offset) -> torch.Tensor:
        n, r = self.n, self.res
        inside = None
        for a, d in enumerate(offset):
            if d:
                m = self.lo[a] if d < 0 else self.hi[a]
                inside = m if inside is None else inside & m
        if inside is None:  # the cell itself
            return torch.arange(n, device=self.keys.device)
        delta = (offset[0] * r + offset[1]) * r + offset[2]
        q = self.keys + delta
        pos = torch.searchsorted(self.keys, q)
        pos.clamp_(max=max(n - 1, 0))
        found = self.keys[pos] == q if n else torch.zeros(0, dtype=torch.bool)
        found &= inside
        idx = torch.where(found, pos, n)
        return torch.where(inside, idx, n + 1)


_OFFSETS = [tuple(int(v) for v in o) for o in _NEIGH.tolist()]


def neighbour_index(coords: torch.Tensor, res: int) -> torch.Tensor:
    """(27, N) rows of the neighbours in ``Conv3d`` kernel order (see :class:`Neighbours`)."""
    nb = Neighbours(coords, res)
    return torch.stack([nb.index(o) for o in _OFFSETS]).long()


def _bn(bn: nn.BatchNorm3d, x: torch.Tensor) -> torch.Tensor:
    training = bn.training and x.shape[0] > 1
    if training and bn.momentum is not None and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, training,
                        0.0 if bn.momentum is None else bn.momentum, bn.eps)  # fmt: skip


def _conv1(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    y = x @ conv.weight[:, :, 0, 0, 0].t()
    return y if conv.bias is None else y + conv.bias


def _conv3(conv: nn.Conv3d, x: torch.Tensor, nb: Neighbours, absent: torch.Tensor | None):
    """3³ convolution (padding 1) over live cells, neighbours found by :class:`Neighbours`;
    ``absent`` is the feature vector of in-grid cells that are not live (None: zero)."""
    cin = x.shape[1]
    pad = x.new_zeros(2, cin)
    if absent is not None:
        pad = torch.stack([absent, x.new_zeros(cin)])
    xp = torch.cat([x, pad])
    w = conv.weight.flatten(2)  # (Cout, Cin, 27)
    out = x.new_zeros(x.shape[0], w.shape[0]) if conv.bias is None else conv.bias.expand(
        x.shape[0], -1).clone()  # fmt: skip
    for k, off in enumerate(_OFFSETS):
        out = out.addmm(xp[nb.index(off)], w[:, :, k].t())
    return out


def _absent_feature(bottleneck: nn.Sequential) -> torch.Tensor:
    """``ELU(BN(conv1(0)))`` of a bottleneck branch: what the dense tensor holds at pruned cells
    when its 3³ convolution runs (running statistics)."""
    conv, bn = cast(nn.Conv3d, bottleneck[0]), cast(nn.BatchNorm3d, bottleneck[1])
    zero = conv.weight.new_zeros(1, conv.weight.shape[0])
    if conv.bias is not None:
        zero = zero + conv.bias
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("the sparse decoder needs BatchNorm running statistics")
    y = (zero - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    return F.elu(y)[0]


class SparseOctreeDecoder(nn.Module):
    """The octree decoder on live cells only; wraps (shares the parameters of) an
    :class:`OctreeDecoder`, so ``state_dict`` keys are the dense decoder's."""

    def __init__(self, dense: OctreeDecoder, absent: str | None = None):
        super().__init__()
        self.dense = dense
        self.cfg = dense.cfg
        absent = absent or getattr(dense.cfg, "absent_neighbours", "dense")
        if absent not in ABSENT_MODES:
            raise ValueError(f"absent must be one of {ABSENT_MODES}, got {absent!r}")
        self.absent = absent

    # ------------------------------------------------------------------------------------
    def _block(self, block, x: torch.Tensor, coords: torch.Tensor, res: int) -> torch.Tensor:
        """One decoder block on the live cells (``coords`` at ``res``, features ``x``)."""
        if block.conv is None:
            return x
        conv = block.conv
        if isinstance(conv, nn.Conv3d) and conv.kernel_size == (3, 3, 3):
            h = _conv3(conv, x, Neighbours(coords, res), None)
        elif isinstance(conv, nn.Conv3d):
            h = _conv1(conv, x)
        else:  # bottleneck: 1³, BN, ELU, 3³, BN, ELU, 1³
            nbr = Neighbours(coords, res)
            a = F.elu(_bn(conv[1], _conv1(conv[0], x)))
            c = _absent_feature(conv) if self.absent == "dense" else None
            a = F.elu(_bn(conv[4], _conv3(conv[3], a, nbr, c)))
            h = _conv1(conv[6], a)
        return F.elu(_bn(block.bn2, h)) + x

    def forward(
        self,
        z: torch.Tensor,
        targets: dict[int, torch.Tensor] | None = None,
        mode: str = "pred",
        thresholds: dict[int, float] | None = None,
        max_res: int | None = None,
    ) -> dict[int, SparseLevel]:
        """Latents (B, latent) → ``{res: SparseLevel}`` at every head resolution (≤ max_res).

        ``mode`` and ``thresholds`` as :meth:`OctreeDecoder.forward`; ``targets`` are dense
        (B, 1, r, r, r) grids (looked up at the live coordinates only)."""
        if mode not in ("pred", "gt", "union", "none"):
            raise ValueError(f"unknown pruning mode {mode!r}")
        if mode in ("gt", "union") and targets is None:
            raise ValueError(f"mode {mode!r} needs targets")
        thresholds = thresholds or {}
        heads = set(head_resolutions(self.cfg))
        b = z.shape[0]
        x = z.reshape(b, -1)
        coords = torch.zeros(b, 4, dtype=torch.long, device=z.device)
        coords[:, 0] = torch.arange(b, device=z.device)
        out: dict[int, SparseLevel] = {}
        child = _CHILD.to(z.device)
        block: Any
        for block, res in zip(self.dense.blocks, self.cfg.resolutions, strict=True):
            if max_res is not None and res > max_res:
                break
            # generative transposed convolution: 8 children per live cell
            w = block.up.weight  # (Cin, Cout, 2, 2, 2)
            cout = w.shape[1]
            wf = w.permute(0, 2, 3, 4, 1).reshape(w.shape[0], 8 * cout)
            x = (x @ wf).reshape(-1, cout)
            coords = coords[:, None, :].repeat(1, 8, 1)
            coords[:, :, 1:] = 2 * coords[:, :, 1:] + child
            coords = coords.reshape(-1, 4)
            # keep rows sorted by key (parents are sorted, children of one parent are
            # contiguous but interleave with neighbours' children)
            order = torch.argsort(_keys(coords, res))
            coords, x = coords[order], x[order]
            x = F.elu(_bn(block.bn, x))
            x = self._block(block, x, coords, res)
            if res in heads:
                logit = _conv1(cast(nn.Conv3d, self.dense.heads[str(res)]), x)[:, 0]
                out[res] = SparseLevel(res, coords, logit)
                if mode == "none":
                    continue
                pred = logit.detach() > thresholds.get(res, 0.0)
                if mode == "pred":
                    keep = pred
                else:
                    assert targets is not None  # checked above
                    t = targets[res]
                    tv = t[coords[:, 0], 0, coords[:, 1], coords[:, 2], coords[:, 3]] > 0.5
                    keep = tv if mode == "gt" else tv | pred
                coords, x = coords[keep], x[keep]
        return out


def sparse_octree_loss(
    levels: dict[int, SparseLevel],
    targets: dict[int, torch.Tensor],
    per_res: dict[int, float] | None = None,
) -> tuple[torch.Tensor, dict[int, float]]:
    """Paper Eq. 1 on sparse levels, equal to :func:`.model.octree_loss` on their dense
    layout (mean BCE over all res³ cells; a cell that is not live has the logit
    :data:`PRUNED_LOGIT`, constant, so it adds a constant and no gradient)."""
    total = None
    parts: dict[int, float] = {}
    for res, lv in levels.items():
        t = targets[res]
        c = lv.coords
        y = t[c[:, 0], 0, c[:, 1], c[:, 2], c[:, 3]].float()
        live = F.binary_cross_entropy_with_logits(lv.logits, y, reduction="sum")
        n_all = t.numel()
        pos_dead = t.sum() - y.sum()
        neg_dead = (n_all - len(y)) - pos_dead
        pl = torch.tensor(PRUNED_LOGIT, dtype=lv.logits.dtype)
        dead = pos_dead * F.softplus(-pl) + neg_dead * F.softplus(pl)
        bce = (live + dead) / n_all
        parts[res] = float(bce.detach())
        term = (per_res or {}).get(res, 1.0) * bce
        total = term if total is None else total + term
    if total is None:
        raise ValueError("no levels to compute a loss on")
    return total, parts


def decode_grids(
    decoder: OctreeDecoder,
    z: torch.Tensor,
    resolutions: tuple[int, ...],
    thresholds: dict[int, float],
    absent: str | None = None,
) -> list[dict[int, np.ndarray]]:
    """Inference: latents → per sample ``{res: bool grid}`` with the sparse decoder."""
    sp = SparseOctreeDecoder(decoder, absent)
    with torch.inference_mode():
        levels = sp(z, mode="pred", thresholds=thresholds, max_res=max(resolutions))
    b = z.shape[0]
    grids = {r: levels[r].occupied(b, thresholds.get(r, 0.0)) for r in resolutions}
    return [{r: grids[r][i] for r in resolutions} for i in range(b)]

"""MinkowskiEngine training backend for the octree decoder (paper §2.2: "We implement the
layers and sparse tensor storage ... using the Minkowski Engine").

**Optional and training-only.** Nothing at run time (CLI, Python API, Blender) imports this
module; MinkowskiEngine (ME) is a compiled extension that Blender's Python does not have. Build
it with ``tools/build_minkowski.sh`` (CPU, cached wheel) and select it in training with
``python -m image2lego.training.train ae --backend minkowski`` (see :class:`MEAutoencoderNet`;
checkpoints and exported weights stay in the dense layout, converted at every save).

:class:`MEOctreeDecoder` is the architecture of :class:`image2lego.core.model.OctreeDecoder`
written with ME's sparse tensors:

* ``MinkowskiGenerativeConvolutionTranspose`` (kernel 2, stride 2) makes the 8 children of every
  live cell, ``MinkowskiBatchNorm`` + ``MinkowskiELU`` follow each layer;
* 3³ context convolutions are ``MinkowskiConvolution`` (kernel 3), 1³ ones and the occupancy
  heads ``MinkowskiLinear``;
* ``MinkowskiPruning`` drops the cells that are predicted (or, teacher-forced, known) empty.

Its submodules carry the dense decoder's names, so :func:`to_dense_state` /
:func:`from_dense_state` convert weights both ways by reordering kernels (measured kernel
layouts: ME's transposed-convolution kernel ``k = dx + 2 dy + 4 dz``, its 3³ kernel
``k = i + 3 j + 9 l`` for the neighbour at offset ``(i-1, j-1, l-1)``; dense ``Conv3d`` is
``weight[:, :, i, j, l]``). ME computes plain sparse-tensor semantics - a neighbour that is not
live contributes zero - so converted weights are run by
:class:`image2lego.core.sparse.SparseOctreeDecoder` with ``absent="zero"``, which
:func:`export_config` records (``absent_neighbours = "zero"``). The parity test
(``tests/test_minkowski.py``) checks ME against that plain-torch path on fixed inputs.

ME coordinates: a decoder whose finest level is ``R``³ keeps level ``r`` at tensor stride
``R / r``, i.e. cell ``(x, y, z)`` of level ``r`` has ME coordinate ``(R / r) · (x, y, z)``.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..core.model import PRUNED_LOGIT, ModelConfig, block_options, head_resolutions
from ..core.sparse import SparseLevel

try:  # optional: the training backend only
    import MinkowskiEngine as ME
except ImportError:  # pragma: no cover - depends on the machine
    ME = None


def available() -> bool:
    return ME is not None


def require() -> None:
    if ME is None:
        raise ImportError(
            "MinkowskiEngine is not installed: build it with tools/build_minkowski.sh "
            "(training only; the runtime never needs it)"
        )


# ------------------------------------------------------------------------------------------
# architecture


class _MEBlock(nn.Module):
    def __init__(self, cin: int, cout: int, conv3: bool, conv1: bool, bottleneck: int = 0):
        super().__init__()
        self.up = ME.MinkowskiGenerativeConvolutionTranspose(
            cin, cout, kernel_size=2, stride=2, bias=False, dimension=3
        )
        self.bn = ME.MinkowskiBatchNorm(cout)
        self.act = ME.MinkowskiELU()
        self.conv = None
        if conv3:
            self.conv = ME.MinkowskiConvolution(cout, cout, kernel_size=3, bias=False, dimension=3)
        elif bottleneck:
            b = bottleneck
            self.conv = nn.Sequential(
                ME.MinkowskiLinear(cout, b, bias=False),
                ME.MinkowskiBatchNorm(b), ME.MinkowskiELU(),
                ME.MinkowskiConvolution(b, b, kernel_size=3, bias=False, dimension=3),
                ME.MinkowskiBatchNorm(b), ME.MinkowskiELU(),
                ME.MinkowskiLinear(b, cout, bias=False),
            )  # fmt: skip
        elif conv1:
            self.conv = ME.MinkowskiLinear(cout, cout, bias=False)
        if self.conv is not None:
            self.bn2 = ME.MinkowskiBatchNorm(cout)

    def forward(self, x):
        x = self.act(self.bn(self.up(x)))
        if self.conv is not None:
            x = self.act(self.bn2(self.conv(x))) + x
        return x


class MEOctreeDecoder(nn.Module):
    """The octree decoder on ME sparse tensors; ``forward`` returns the same
    ``{res: SparseLevel}`` as :class:`image2lego.core.sparse.SparseOctreeDecoder`."""

    def __init__(self, cfg: ModelConfig):
        require()
        super().__init__()
        self.cfg = cfg
        chans = (cfg.latent_dim, *cfg.dec_channels)
        heads = head_resolutions(cfg)
        self.blocks = nn.ModuleList()
        self.heads = nn.ModuleDict()
        for i, res in enumerate(cfg.resolutions):
            self.blocks.append(_MEBlock(chans[i], chans[i + 1], **block_options(cfg, res)))
            if res in heads:
                self.heads[str(res)] = ME.MinkowskiLinear(chans[i + 1], 1, bias=True)

    def forward(
        self,
        z: torch.Tensor,
        targets: dict[int, torch.Tensor] | None = None,
        mode: str = "pred",
        thresholds: dict[int, float] | None = None,
        max_res: int | None = None,
    ) -> dict[int, SparseLevel]:
        if mode not in ("pred", "gt", "union", "none"):
            raise ValueError(f"unknown pruning mode {mode!r}")
        if mode in ("gt", "union") and targets is None:
            raise ValueError(f"mode {mode!r} needs targets")
        thresholds = thresholds or {}
        top = self.cfg.resolutions[-1]
        b = z.shape[0]
        coords = torch.zeros(b, 4, dtype=torch.int32, device=z.device)
        coords[:, 0] = torch.arange(b, dtype=torch.int32, device=z.device)
        x = ME.SparseTensor(z.reshape(b, -1), coordinates=coords, tensor_stride=top)
        prune = ME.MinkowskiPruning()
        out: dict[int, SparseLevel] = {}
        for block, res in zip(self.blocks, self.cfg.resolutions, strict=True):
            if max_res is not None and res > max_res:
                break
            x = block(x)
            if str(res) not in self.heads:
                continue
            logit = self.heads[str(res)](x).F[:, 0]
            stride = top // res
            c = x.C.long()
            cells = torch.cat([c[:, :1], c[:, 1:] // stride], 1)
            order = torch.argsort(((cells[:, 0] * res + cells[:, 1]) * res + cells[:, 2]) * res
                                  + cells[:, 3])  # fmt: skip
            out[res] = SparseLevel(res, cells[order], logit[order])
            if mode == "none":
                continue
            keep = logit.detach() > thresholds.get(res, 0.0)
            if mode in ("gt", "union"):
                t = targets[res]
                tv = t[cells[:, 0], 0, cells[:, 1], cells[:, 2], cells[:, 3]] > 0.5
                keep = tv if mode == "gt" else keep | tv
            if not bool(keep.any()):  # nothing to expand: the finer levels are empty
                for r in self.cfg.resolutions:
                    if r > res and str(r) in self.heads and (max_res is None or r <= max_res):
                        out[r] = SparseLevel(r, cells[:0], logit[:0])
                break
            if not bool(keep.all()):
                x = prune(x, keep)
        return out


# ------------------------------------------------------------------------------------------
# weight conversion (ME <-> the dense decoder's state dict)


def _up_to_dense(k: torch.Tensor) -> torch.Tensor:
    # (8, Cin, Cout), k = dx + 2dy + 4dz  ->  (Cin, Cout, dx, dy, dz)
    return k.reshape(2, 2, 2, *k.shape[1:]).permute(3, 4, 2, 1, 0).contiguous()


def _up_from_dense(w: torch.Tensor) -> torch.Tensor:
    return w.permute(4, 3, 2, 0, 1).reshape(8, *w.shape[:2]).contiguous()


def _conv3_to_dense(k: torch.Tensor) -> torch.Tensor:
    # (27, Cin, Cout), k = i + 3j + 9l  ->  (Cout, Cin, i, j, l)
    return k.reshape(3, 3, 3, *k.shape[1:]).permute(4, 3, 2, 1, 0).contiguous()


def _conv3_from_dense(w: torch.Tensor) -> torch.Tensor:
    return w.permute(4, 3, 2, 1, 0).reshape(27, w.shape[1], w.shape[0]).contiguous()


def _me_key(key: str, dense: torch.Tensor) -> str:
    """Dense state-dict key (and its tensor) → the ME module's key."""
    mod, leaf = key.rsplit(".", 1)
    if leaf == "weight" and dense.dim() == 5 and (mod.endswith(".up") or dense.shape[-1] == 3):
        return f"{mod}.kernel"  # transposed / 3³ convolution
    if mod.endswith((".bn", ".bn2", ".conv.1", ".conv.4")):
        return f"{mod}.bn.{leaf}"  # MinkowskiBatchNorm wraps a BatchNorm1d
    return f"{mod}.linear.{leaf}"  # 1³ convolutions and heads are MinkowskiLinear


def to_dense_state(me_state: dict[str, torch.Tensor], dense_template: dict) -> dict:
    """ME decoder state → :class:`OctreeDecoder` state (keys of ``dense_template``)."""
    out = {}
    for k, v in dense_template.items():
        src = me_state[_me_key(k, v)]
        if k.endswith("up.weight"):
            src = _up_to_dense(src)
        elif v.dim() == 5 and v.shape[-1] == 3:
            src = _conv3_to_dense(src)
        elif v.dim() == 5:
            src = src.reshape(v.shape)  # (Cout, Cin) -> (Cout, Cin, 1, 1, 1)
        if tuple(src.shape) != tuple(v.shape):
            raise ValueError(f"{k}: ME tensor converts to {tuple(src.shape)}, want {v.shape}")
        out[k] = src.detach().clone()
    return out


def from_dense_state(dense_state: dict[str, torch.Tensor], me_template: dict) -> dict:
    """:class:`OctreeDecoder` state → ME decoder state (e.g. to fine-tune shipped weights)."""
    out = {}
    for k, v in dense_state.items():
        mk = _me_key(k, v)
        if mk not in me_template:
            raise ValueError(f"{k}: the ME decoder has no {mk}")
        if k.endswith("up.weight"):
            v = _up_from_dense(v)
        elif v.dim() == 5 and v.shape[-1] == 3:
            v = _conv3_from_dense(v)
        elif v.dim() == 5:
            v = v.reshape(v.shape[:2])
        if tuple(v.shape) != tuple(me_template[mk].shape):
            raise ValueError(f"{k}: converts to {tuple(v.shape)}, ME wants {me_template[mk].shape}")
        out[mk] = v.detach().clone()
    missing = sorted(set(me_template) - set(out))
    if missing:
        raise ValueError(f"ME tensors without a dense counterpart: {missing[:4]}")
    return out


class MEAutoencoderNet(nn.Module):
    """What ``train ae --backend minkowski`` optimises: the dense voxel encoder (shared with the
    run's :class:`~image2lego.core.model.OctreeAutoencoder`, whose checkpoint it is saved in)
    and an :class:`MEOctreeDecoder`. ``forward`` returns ME's sparse levels and the latent."""

    def __init__(self, encoder: nn.Module, decoder: MEOctreeDecoder):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, grid, mode="union", targets=None, latent_noise: float = 0.0):
        z = self.encoder(grid)
        zin = z + latent_noise * torch.randn_like(z) if latent_noise > 0 else z
        return self.decoder(zin, targets=targets, mode=mode), z


class DenseLogits(nn.Module):
    """An :class:`MEOctreeDecoder` seen as the dense decoder's interface (``{res: (B, 1, r, r,
    r) logits}``, pruned cells at ``PRUNED_LOGIT``), for the training run's evaluation."""

    def __init__(self, decoder: MEOctreeDecoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, z, targets=None, mode="pred", thresholds=None, max_res=None):
        levels = self.decoder(z, targets=targets, mode=mode, thresholds=thresholds,
                              max_res=max_res)  # fmt: skip
        return dense_logits(levels, z.shape[0])


def load_dense_decoder(me: MEOctreeDecoder, dense: nn.Module) -> None:
    """Copy a dense :class:`~image2lego.core.model.OctreeDecoder`'s weights into ``me``."""
    me.load_state_dict(from_dense_state(dense.state_dict(), me.state_dict()))


def store_dense_decoder(me: MEOctreeDecoder, dense: nn.Module) -> None:
    """Copy ``me``'s weights into a dense decoder (checkpoints and export stay dense)."""
    dense.load_state_dict(to_dense_state(me.state_dict(), dense.state_dict()))


def export_config(cfg: ModelConfig) -> ModelConfig:
    """The configuration that weights trained here must carry: plain sparse semantics."""
    return dataclasses.replace(cfg, absent_neighbours="zero")


def dense_logits(levels: dict[int, SparseLevel], batch: int) -> dict[int, torch.Tensor]:
    return {r: lv.to_dense(batch, PRUNED_LOGIT) for r, lv in levels.items()}

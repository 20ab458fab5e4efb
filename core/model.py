"""The TL-Octree network (paper §2.2-2.3) in pure PyTorch on dense tensors.

* :class:`OctreeAutoencoder` - a 3D encoder (stride-2 convolutions) to a 256-d latent (one 1³
  cell × 256 channels) and an octree decoder that grows 1 → 2 → 4 → 8 → 16 → 32 with
  *generative transposed convolutions* (kernel 2, stride 2: every cell makes its 8 children),
  BatchNorm + ELU, and a 1-channel occupancy logit at 4³, 8³, 16³ and 32³.
* :class:`ImageEncoder` - the AlexNet-like 2D encoder (96/256/384/256 channels with max
  pooling, fully connected to 256) that predicts the autoencoder's latent from a 128² image.

Sparse semantics on dense tensors: the paper used the Minkowski Engine so that cells predicted
empty are pruned and never expanded. Here every level keeps a boolean *cell mask*; after a
block's activation the features are multiplied by the mask (pruned cells carry exactly zero
features) and their logits are replaced by :data:`PRUNED_LOGIT`, so a pruned cell's children are
empty too. The mask at level ``l`` is the upsampled "occupied" decision of level ``l-1``: the
prediction (``logit > threshold``) at inference, the ground truth (teacher forcing, as OGN does)
or the union of both during training. Because an occupied child implies an occupied parent (the
targets at lower resolutions are max-pools of the 32³ grid: octree semantics), pruning never
removes a cell the target needs unless its parent was wrongly predicted empty.

This runs wherever torch runs (Blender's bundled Python included); it trades the memory savings
of a real sparse engine for portability, which is fine at 32³.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

#: Logit given to pruned cells (sigmoid ~ 2e-9): "certainly empty".
PRUNED_LOGIT = -20.0
#: Resolutions at which the decoder emits occupancy logits.
OUTPUT_RESOLUTIONS = (4, 8, 16, 32)
LATENT_DIM = 256


@dataclass(frozen=True)
class ModelConfig:
    """Channels of the autoencoder and image encoder (stored in the weights' metadata).

    ``dec_channels[i]`` is the width at resolution ``2 ** (i + 1)`` (2³ … 32³); the paper's
    chosen decoder is [96, 128, 96, 64, 1] for 4³ … 32³ + the 1-channel head, here preceded by a
    2³ stage. ``conv3_max_res`` is the highest resolution that gets an extra dense 3³
    convolution after its transposed convolution (costly above 8³ on a CPU).
    """

    latent_dim: int = LATENT_DIM
    dec_channels: tuple[int, ...] = (256, 96, 128, 96, 16)
    enc_channels: tuple[int, ...] = (32, 64, 96, 128, 256)
    conv3_max_res: int = 4
    conv1_max_res: int = 16
    #: resolutions above ``conv3_max_res`` up to this one get a *bottleneck* 3³ convolution
    #: (1³ down to ``bottleneck`` channels, 3³, 1³ back up): spatial context for thin parts at
    #: a quarter of a full 3³ convolution's cost. 0 = off (the shipped v1 weights).
    bottleneck_max_res: int = 0
    bottleneck: int = 32
    #: further resolutions (above ``conv3_max_res``) that get a full 3³ convolution: at 32³,
    #: where the width is small, neighbours let a thin part continue across parent cells.
    conv3_extra: tuple[int, ...] = ()
    img_channels: tuple[int, ...] = (96, 256, 384, 256)
    img_hidden: int = 1024
    #: what a 3³ convolution of the sparse decoder (core/sparse.py) reads at an in-grid cell
    #: that is not live: "dense" = what this dense emulation holds there (weights trained
    #: here), "zero" = plain sparse-tensor semantics (weights trained with MinkowskiEngine)
    absent_neighbours: str = "dense"

    @property
    def resolutions(self) -> tuple[int, ...]:
        return tuple(2 ** (i + 1) for i in range(len(self.dec_channels)))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k, v in known.items():
            if isinstance(v, list):
                known[k] = tuple(v)
        return cls(**known)


def head_resolutions(cfg: ModelConfig) -> tuple[int, ...]:
    """Resolutions at which a decoder of ``cfg`` emits logits: every level from 4³ up
    (4, 8, 16, 32 for the shipped five-level decoder; a sixth level adds 64)."""
    return tuple(r for r in cfg.resolutions if r >= OUTPUT_RESOLUTIONS[0])


def block_options(cfg: ModelConfig, res: int) -> dict:
    """Which convolutions the decoder block that makes level ``res`` has (every backend of
    the decoder builds its blocks from this, so their weights line up)."""
    return {
        "conv3": res <= cfg.conv3_max_res or res in cfg.conv3_extra,
        "conv1": res <= cfg.conv1_max_res,
        "bottleneck": cfg.bottleneck if res <= cfg.bottleneck_max_res else 0,
    }


def octree_targets(grid: torch.Tensor, resolutions: Sequence[int] = OUTPUT_RESOLUTIONS):
    """Ground truth at every resolution: ``{r: float tensor (B, 1, r, r, r)}``.

    A coarse cell is occupied when any of its children is (max-pool): octree semantics.
    ``grid`` is (B, 1, R, R, R) or (B, R, R, R), R a power of two >= max(resolutions).
    """
    if grid.dim() == 4:
        grid = grid[:, None]
    grid = grid.float()
    full = grid.shape[-1]
    out = {}
    for r in resolutions:
        if full % r:
            raise ValueError(f"resolution {r} does not divide the grid size {full}")
        k = full // r
        out[r] = F.max_pool3d(grid, k) if k > 1 else grid
    return out


class _DecBlock(nn.Module):
    """Generative transposed convolution (k2 s2) + BN + ELU [+ 3³ conv + BN + ELU]."""

    def __init__(self, cin: int, cout: int, conv3: bool, conv1: bool, bottleneck: int = 0):
        super().__init__()
        self.up = nn.ConvTranspose3d(cin, cout, 2, stride=2, bias=False)
        self.bn = nn.BatchNorm3d(cout)
        self.conv: nn.Module | None = None
        if conv3:
            self.conv = nn.Conv3d(cout, cout, 3, padding=1, bias=False)
        elif bottleneck:
            b = bottleneck
            self.conv = nn.Sequential(
                nn.Conv3d(cout, b, 1, bias=False), nn.BatchNorm3d(b), nn.ELU(),
                nn.Conv3d(b, b, 3, padding=1, bias=False), nn.BatchNorm3d(b), nn.ELU(),
                nn.Conv3d(b, cout, 1, bias=False),
            )  # fmt: skip
        elif conv1:
            # 1³ convolution: per-cell mixing, cheap where a 3³ one is not.
            self.conv = nn.Conv3d(cout, cout, 1, bias=False)
        if self.conv is not None:
            self.bn2 = nn.BatchNorm3d(cout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = F.elu(self.bn(self.up(x)))
        if mask is not None:
            x = x * mask
        if self.conv is not None:
            x = F.elu(self.bn2(self.conv(x))) + x  # residual keeps the stack easy to train
            if mask is not None:
                x = x * mask
        return x


class OctreeDecoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        chans = (cfg.latent_dim, *cfg.dec_channels)
        self.blocks = nn.ModuleList()
        self.heads = nn.ModuleDict()
        for i, res in enumerate(cfg.resolutions):
            self.blocks.append(_DecBlock(chans[i], chans[i + 1], **block_options(cfg, res)))
            if res in head_resolutions(cfg):
                self.heads[str(res)] = nn.Conv3d(chans[i + 1], 1, 1)

    def forward(
        self,
        z: torch.Tensor,
        targets: dict[int, torch.Tensor] | None = None,
        mode: str = "pred",
        thresholds: dict[int, float] | None = None,
        max_res: int | None = None,
    ) -> dict[int, torch.Tensor]:
        """Latents (B, 256) → ``{res: logits (B, 1, res, res, res)}`` at 4, 8, 16, 32.

        ``mode`` decides which cells are expanded: ``"pred"`` (inference: children of cells
        whose logit > threshold), ``"gt"`` (teacher forcing: children of occupied target cells),
        ``"union"`` (both), ``"none"`` (no pruning, for ablation). ``thresholds`` are logit
        thresholds per resolution (default 0, i.e. p > 0.5).
        """
        if mode not in ("pred", "gt", "union", "none"):
            raise ValueError(f"unknown pruning mode {mode!r}")
        if mode in ("gt", "union") and targets is None:
            raise ValueError(f"mode {mode!r} needs targets")
        x = z.reshape(z.shape[0], -1, 1, 1, 1)
        thresholds = thresholds or {}
        out: dict[int, torch.Tensor] = {}
        mask = None  # cells alive at the current level (None = all)
        for block, res in zip(self.blocks, self.cfg.resolutions, strict=True):
            if max_res is not None and res > max_res:
                break
            x = block(x, mask)
            if str(res) in self.heads:
                logit = self.heads[str(res)](x)
                if mask is not None:
                    logit = torch.where(mask > 0, logit, torch.full_like(logit, PRUNED_LOGIT))
                out[res] = logit
                if mode == "none":
                    keep = None
                else:
                    pred = (logit > thresholds.get(res, 0.0)).float().detach()
                    if mask is not None:
                        pred = pred * mask  # a pruned cell stays pruned, whatever the threshold
                    if mode == "pred":
                        keep = pred
                    elif mode == "gt":
                        assert targets is not None  # forward() checks it for gt/union
                        keep = targets[res]
                    else:
                        assert targets is not None
                        keep = torch.maximum(pred, targets[res])
                # children of kept cells are alive at the next level
                mask = None if keep is None else _upsample(keep)
            elif mask is not None:
                mask = _upsample(mask)
        return out


def _upsample(m: torch.Tensor) -> torch.Tensor:
    return m.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)


class VoxelEncoder(nn.Module):
    """32³ occupancy → 256-d latent, mirroring the decoder with stride-2 convolutions."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for i, c in enumerate(cfg.enc_channels):
            last = i == len(cfg.enc_channels) - 1
            # kernel 4 stride 2 pad 1 halves the size and sees a little context; the last
            # stage (2³ → 1³) is a plain kernel-2 convolution.
            if last:
                layers += [nn.Conv3d(cin, c, 2, stride=2, bias=False)]
            else:
                layers += [nn.Conv3d(cin, c, 4, stride=2, padding=1, bias=False)]
            layers += [nn.BatchNorm3d(c), nn.ELU()]
            cin = c
        self.net = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, cfg.latent_dim)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        if grid.dim() == 4:
            grid = grid[:, None]
        h = self.net(grid.float() * 2.0 - 1.0)
        return self.fc(h.flatten(1))


class OctreeAutoencoder(nn.Module):
    def __init__(self, cfg: ModelConfig | None = None):
        super().__init__()
        self.cfg = cfg or ModelConfig()
        self.encoder = VoxelEncoder(self.cfg)
        self.decoder = OctreeDecoder(self.cfg)

    def forward(
        self,
        grid: torch.Tensor,
        mode: str = "pred",
        targets=None,
        thresholds=None,
        latent_noise: float = 0.0,
        return_latent: bool = False,
    ):
        """Encode and decode. ``latent_noise`` (training only) adds Gaussian noise to the
        latent so the decoder tolerates the image encoder's errors."""
        z = self.encoder(grid)
        zin = z + latent_noise * torch.randn_like(z) if latent_noise > 0 else z
        out = self.decoder(zin, targets=targets, mode=mode, thresholds=thresholds)
        return (out, z) if return_latent else out


class ImageEncoder(nn.Module):
    """128² grayscale → 256-d latent (AlexNet-like: 96/256/384/256 channels, max pooling, FC).

    128 → conv s2 → 64 → pool 32 → conv → pool 16 → conv → pool 8 → conv → pool 4; the
    256 × 4² tensor goes through two fully connected layers to the latent.
    """

    def __init__(self, cfg: ModelConfig | None = None):
        super().__init__()
        cfg = cfg or ModelConfig()
        c1, c2, c3, c4 = cfg.img_channels

        def cbe(ci, co, k, s=1):
            return [nn.Conv2d(ci, co, k, stride=s, padding=k // 2, bias=False),
                    nn.BatchNorm2d(co), nn.ELU()]  # fmt: skip

        self.features = nn.Sequential(
            *cbe(1, c1, 5, 2), nn.MaxPool2d(2),
            *cbe(c1, c2, 3), nn.MaxPool2d(2),
            *cbe(c2, c3, 3), nn.MaxPool2d(2),
            *cbe(c3, c4, 3), nn.MaxPool2d(2),
        )  # fmt: skip
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.3),
            nn.Linear(c4 * 16, cfg.img_hidden),
            nn.ELU(),
            nn.Dropout(0.3),
            nn.Linear(cfg.img_hidden, cfg.latent_dim),
        )

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """``img``: (B, 1, 128, 128) float in [0, 1] (or uint8, scaled here)."""
        if img.dim() == 3:
            img = img[:, None]
        if img.dtype == torch.uint8:
            img = img.float() / 255.0
        return self.fc(self.features(img * 2.0 - 1.0))


@dataclass
class LossWeights:
    per_res: dict[int, float] = field(default_factory=lambda: {4: 1.0, 8: 1.0, 16: 1.0, 32: 1.0})
    pos_weight: float = 1.0
    dice: float = 0.0


def octree_loss(
    logits: dict[int, torch.Tensor],
    targets: dict[int, torch.Tensor],
    weights: LossWeights | None = None,
) -> tuple[torch.Tensor, dict[int, float]]:
    """Paper Eq. 1: the sum over resolutions of the binary cross-entropy (mean per voxel, so
    each resolution weighs the same), plus optional positive weighting and a soft-IoU term.
    Returns the total and the per-resolution BCE values (floats, for logging)."""
    w = weights or LossWeights()
    total = logits[next(iter(logits))].new_zeros(())
    parts: dict[int, float] = {}
    pw = None
    for res, lg in logits.items():
        y = targets[res]
        if w.pos_weight != 1.0:
            pw = lg.new_tensor(w.pos_weight)
        bce = F.binary_cross_entropy_with_logits(lg, y, pos_weight=pw)
        parts[res] = float(bce.detach())
        term = bce
        if w.dice > 0:
            p = torch.sigmoid(lg)
            inter = (p * y).flatten(1).sum(1)
            union = (p + y - p * y).flatten(1).sum(1)
            term = term + w.dice * (1.0 - (inter + 1.0) / (union + 1.0)).mean()
        total = total + w.per_res.get(res, 1.0) * term
    return total, parts


def iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample intersection over union of boolean/0-1 grids (B, ...). Empty ∪ empty = 1."""
    p = pred.bool().flatten(1)
    t = target.bool().flatten(1)
    inter = (p & t).sum(1).float()
    union = (p | t).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))

"""Validation during and after training: encoding and decoding in batches, IoU, thresholds,
precise BatchNorm statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core.model import (
    OUTPUT_RESOLUTIONS,
    PRUNED_LOGIT,
    ModelConfig,
    OctreeAutoencoder,
    iou,
    octree_targets,
)
from .checkpoints import load_checkpoint, save_checkpoint
from .sampling import load_train_voxels


@torch.no_grad()
def decode_batches(decoder, latents: torch.Tensor, thresholds=None, batch: int = 64):
    """Decoder logits in inference mode (pruning by prediction) for many latents."""
    decoder.eval()
    out: dict[int, list[torch.Tensor]] = {}
    for i in range(0, len(latents), batch):
        lg = decoder(latents[i : i + batch], mode="pred", thresholds=thresholds)
        for r, v in lg.items():
            out.setdefault(r, []).append(v)
    return {r: torch.cat(v) for r, v in out.items()}


@torch.no_grad()
def encode_voxels(encoder, voxels: np.ndarray, batch: int = 64) -> torch.Tensor:
    encoder.eval()
    zs = []
    for i in range(0, len(voxels), batch):
        zs.append(encoder(torch.from_numpy(voxels[i : i + batch]).float()[:, None]))
    return torch.cat(zs)


@torch.no_grad()
def encode_images(img_encoder, views: np.ndarray, batch: int = 128) -> torch.Tensor:
    img_encoder.eval()
    zs = []
    for i in range(0, len(views), batch):
        zs.append(img_encoder(torch.from_numpy(np.ascontiguousarray(views[i : i + batch]))))
    return torch.cat(zs)


@torch.no_grad()
def ious_from_latents(
    decoder, latents, voxels: np.ndarray, thresholds=None, batch: int = 64, max_res=None,
    mode: str = "pred",
):  # fmt: skip
    """Per-sample IoU at every output resolution (up to ``max_res``): ``{res: (N,) array}``.
    ``mode="gt"`` prunes by the ground truth instead of the predictions (a diagnosis: what each
    level scores when the coarser levels are right)."""
    decoder.eval()
    res = [r for r in OUTPUT_RESOLUTIONS if max_res is None or r <= max_res]
    res_iou: dict[int, list[np.ndarray]] = {r: [] for r in res}
    thr = thresholds or {}
    for i in range(0, len(latents), batch):
        tg = octree_targets(torch.from_numpy(voxels[i : i + batch]), res)
        lg = decoder(latents[i : i + batch], targets=tg, mode=mode, thresholds=thresholds,
                     max_res=max_res)  # fmt: skip
        for r in res:
            res_iou[r].append(iou(lg[r] > thr.get(r, 0.0), tg[r]).numpy())
    return {r: np.concatenate(v) for r, v in res_iou.items()}


@torch.no_grad()
def choose_thresholds(
    decoder, latents, voxels: np.ndarray, grid=None, batch: int = 64
) -> dict[int, float]:
    """Logit thresholds per resolution maximising mean IoU, chosen coarse to fine. Use training
    data.

    A level's logits depend only on the coarser levels' thresholds (which prune), so each level
    is decoded once and every candidate threshold is tried on the same logits (pruned cells
    hold :data:`PRUNED_LOGIT`, below every candidate): one decoder pass per level instead of one
    per candidate.
    """
    grid = np.round(np.arange(-2.0, 2.01, 0.25), 2) if grid is None else np.asarray(grid)
    if grid.size and grid.min() <= PRUNED_LOGIT:
        raise ValueError(f"threshold candidates must be above the pruned logit {PRUNED_LOGIT}")
    decoder.eval()
    thr: dict[int, float] = {}
    for r in OUTPUT_RESOLUTIONS:
        scores = []  # (candidates, batch) IoU per batch
        for i in range(0, len(latents), batch):
            lg = decoder(latents[i : i + batch], mode="pred", thresholds=thr, max_res=r)[r]
            tg = octree_targets(torch.from_numpy(voxels[i : i + batch]), (r,))[r]
            scores.append(np.stack([iou(lg > t, tg).numpy() for t in grid]))
        thr[r] = float(grid[int(np.argmax(np.concatenate(scores, axis=1).mean(1)))])
    return thr


@torch.no_grad()
def recalibrate_bn(
    ae: OctreeAutoencoder, voxels: np.ndarray, batch: int = 16, decoder=True, encoder=True
):
    """Precise BatchNorm: replace the running statistics (an exponential average that lags
    behind the weights while they still move fast) by the exact average over ``voxels`` with
    the network in training-mode batches. Measured on the first run: val IoU 4³ 0.38 → 0.93
    with the same weights. The decoder is recalibrated on the recalibrated encoder's latents,
    with the training-time pruning (ground truth ∪ prediction)."""

    def reset(mod):
        for m in mod.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                m.momentum = None  # cumulative average

    def restore(mod):
        for m in mod.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = 0.1

    if encoder:
        reset(ae.encoder)
        ae.encoder.train()
        for i in range(0, len(voxels) - batch + 1, batch):
            ae.encoder(torch.from_numpy(voxels[i : i + batch]).float()[:, None])
        ae.encoder.eval()
        restore(ae.encoder)
    ae.encoder.eval()
    if decoder:
        reset(ae.decoder)
        ae.decoder.train()
        for i in range(0, len(voxels) - batch + 1, batch):
            x = torch.from_numpy(voxels[i : i + batch]).float()[:, None]
            ae.decoder(ae.encoder(x), targets=octree_targets(x), mode="union")
        restore(ae.decoder)
    ae.eval()
    return ae


def recalibrate_checkpoint(args, src: Path, dst: Path, voxels: np.ndarray | None = None) -> Path:
    """``src`` autoencoder checkpoint → ``dst`` with precise BatchNorm statistics."""
    st = load_checkpoint(src)
    if st.get("bn_recalibrated"):
        if src != dst:
            save_checkpoint(dst, st)
        return dst
    cfg = ModelConfig.from_dict(json.loads(st["config"]))
    ae = OctreeAutoencoder(cfg)
    ae.load_state_dict(st["model"])
    if voxels is None:
        voxels = load_train_voxels(args.cache, args.labels).voxels
    rng = np.random.default_rng(args.seed)
    pick = rng.choice(len(voxels), size=min(args.recal_samples, len(voxels)), replace=False)
    # a run that froze the encoder (--freeze-below) keeps its statistics: recalibrating them
    # on another data mix would move the latents under an image encoder trained on them
    enc = not json.loads(st.get("args", "{}")).get("freeze_below", 0)
    recalibrate_bn(ae, voxels[np.sort(pick)], encoder=enc)
    st["model"] = ae.state_dict()
    st["bn_recalibrated"] = True
    save_checkpoint(dst, st)
    return dst

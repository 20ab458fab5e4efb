"""What a training epoch sees: class-balanced orders, the voxel and view sets, augmentation."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..lego.errors import get_logger
from .processes import Dist

log = get_logger()


def class_weights(
    labels: np.ndarray, power: float = 0.0, fixed: dict[str, float] | None = None
) -> np.ndarray:
    """Per-row sampling probabilities so that class ``c`` (``n_c`` rows) is drawn in
    proportion to ``n_c ** power``: 0 = every class equally often (class-balanced), 1 = every
    row equally often (no balancing), 0.5 = the square root (no class dominates, and rare
    classes are not repeated a hundred times per epoch). ``fixed`` ({class: share}) pins the
    named classes' shares of the draws; the other classes split the rest by ``n_c ** power``."""
    if not 0.0 <= power <= 1.0:
        raise ValueError(f"balance power must be in [0, 1], got {power}")
    labs, inv, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
    share = counts.astype(np.float64) ** power
    fixed = dict(fixed or {})
    if fixed:
        names = [str(c) for c in labs]
        unknown = sorted(set(fixed) - set(names))
        if unknown:
            raise ValueError(f"class share for unknown class(es) {', '.join(unknown)}")
        if any(not 0.0 < f < 1.0 for f in fixed.values()) or sum(fixed.values()) >= 1.0:
            raise ValueError(f"class shares must be in (0, 1) and sum below 1, got {fixed}")
        pinned = np.array([c in fixed for c in names])
        if pinned.all():
            raise ValueError("class shares pin every class; leave at least one free")
        share[~pinned] *= (1.0 - sum(fixed.values())) / share[~pinned].sum()
        share[pinned] = [fixed[c] for c in np.array(names)[pinned]]
    p = (share / counts)[inv]
    return p / p.sum()


def epoch_order(
    n: int, epoch: int, seed: int, d: Dist, weights: np.ndarray | None = None
) -> np.ndarray:
    """This rank's sample order for one epoch: a seeded permutation split across ranks like
    ``DistributedSampler`` (padded so every rank takes the same number of steps). With
    ``weights`` (per-row probabilities, :func:`class_weights`) ``n`` rows are drawn with
    replacement by those weights instead, seeded by (seed, epoch), and dealt to the ranks."""
    if weights is not None:
        if len(weights) != n:
            raise ValueError(f"{len(weights)} sampling weights for {n} rows")
        rng = np.random.default_rng([seed, epoch])
        per = math.ceil(n / d.world)
        draw = rng.choice(n, size=per * d.world, replace=True, p=weights)
        return draw[d.rank :: d.world].astype(np.int64)
    sampler = torch.utils.data.DistributedSampler(
        range(n), num_replicas=d.world, rank=d.rank, shuffle=True, seed=seed, drop_last=False
    )
    sampler.set_epoch(epoch)
    return np.fromiter(iter(sampler), dtype=np.int64)


def synthetic_shapes(n: int, seed: int = 0, res: int = 32) -> np.ndarray:
    """``n`` small procedural furniture-like shapes (seat slab, legs, optional back) for tests
    and smoke runs; never a substitute for the real training data."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, res, res, res), dtype=bool)
    for i in range(n):
        w, dpt = rng.integers(8, 16, 2)
        x0, y0 = (res - w) // 2, (res - dpt) // 2
        seat = int(rng.integers(8, 14))
        g = out[i]
        g[x0 : x0 + w, y0 : y0 + dpt, seat : seat + 2] = True
        for lx in (x0, x0 + w - 2):
            for ly in (y0, y0 + dpt - 2):
                g[lx : lx + 2, ly : ly + 2, 0:seat] = True
        if rng.random() < 0.7:
            top = int(rng.integers(seat + 6, res))
            g[x0 : x0 + w, y0 + dpt - 2 : y0 + dpt, seat:top] = True
    return out


def load_train_voxels(cache: str | None, labels: Sequence[str] | None, split: str = "train"):
    from .data import load_voxels

    return load_voxels(cache=cache, split=split, labels=labels)


def check_views_align(cache: str | None, vs) -> int:
    """Rows of ``views128.npz`` that line up with the voxel cache ``vs`` (a prefix: the
    views may have been rendered before more rows were appended). Raises on a mismatch."""
    from ..core.paths import cache_dir

    p = Path(cache) if cache else cache_dir(create=False)
    if p.is_dir() or p.suffix != ".npz":
        p = p / "views128.npz"
    with np.load(p, allow_pickle=False) as z:
        if "model_id" not in z.files:
            return min(len(vs), len(z["images"]))
        mid, rot = z["model_id"], z["rotation"]
    n = min(len(mid), len(vs))
    bad = np.flatnonzero((mid[:n] != vs.model_id[:n]) | (rot[:n] != vs.rotation[:n]))
    if len(bad):
        raise ValueError(f"{p} does not line up with the voxel cache (first bad row {bad[0]})")
    return n


def load_set_pose_views(cache: str | None = None, parts: str | None = None):
    """``(rows, images)``: voxel-cache row indices and their set-pose view (uint8 128²), from
    ``views128.npz`` or, with ``parts``, from partial renders (``part*.npz``)."""
    if parts:
        rows, imgs = [], []
        for p in sorted(Path(parts).glob("part*.npz")):
            with np.load(p) as z:
                rows.append(z["rows"])
                imgs.append(z["v0"])
        if not rows:
            raise FileNotFoundError(f"no part*.npz renders in {parts}")
        rows_a, imgs_a = np.concatenate(rows), np.concatenate(imgs)
        order = np.argsort(rows_a)
        return rows_a[order], imgs_a[order]
    v = load_views(cache)
    return np.arange(len(v)), v[:, 0]


def load_views(cache: str | None) -> np.ndarray:
    """``views128.npz`` from ``training.render.render_cache``: its ``images`` array, uint8
    (N, V, 128, 128), rows aligned with the voxel cache's rows, view 0 = set pose."""
    from ..core.paths import cache_dir

    p = Path(cache) if cache else cache_dir(create=False)
    if p.is_dir() or p.suffix != ".npz":
        p = p / "views128.npz"
    if not p.is_file():
        raise FileNotFoundError(f"rendered views {p} not found (training.render builds them)")
    with np.load(p, allow_pickle=False) as z:
        if "images" not in z.files:
            raise ValueError(f"{p} has no 'images' array (keys: {z.files})")
        return z["images"]


def view_azimuth_offsets(cache: str | None) -> np.ndarray:
    """(N, V) float: each rendered view's camera azimuth minus the set pose's, in degrees
    wrapped to [-180, 180), from ``views128.npz``'s ``views`` parameters."""
    from ..core.camera import SET_POSE
    from ..core.paths import cache_dir

    p = Path(cache) if cache else cache_dir(create=False)
    if p.is_dir() or p.suffix != ".npz":
        p = p / "views128.npz"
    with np.load(p, allow_pickle=False) as z:
        if "views" not in z.files or "view_fields" not in z.files:
            raise ValueError(f"{p} holds no view parameters ('views', 'view_fields')")
        names = [str(f) for f in z["view_fields"]]
        az = z["views"][..., names.index("azimuth")].astype(np.float64)
    return (az - SET_POSE.azimuth + 180.0) % 360.0 - 180.0


def rotated_view_mask(rotation: np.ndarray, az_offset: np.ndarray, limit: float) -> np.ndarray:
    """(N, V) bool: the views a row may be trained on. A rotated row (``rotation > 0``: a
    ModelNet40 chair turned in 30-degree steps, its target turned with it) keeps only the views
    whose camera azimuth is within ``limit`` degrees of the set pose: a camera turned by ``a``
    shows rotation ``r`` as rotation ``r + a / 30`` would look from the set pose, so beyond
    half the step (15 degrees) the picture asks for another rotation's grid than its target
    (contradicting labels). View 0 (the set pose) is always allowed; unrotated rows keep all."""
    if not 0.0 <= limit <= 180.0:
        raise ValueError(f"azimuth limit must be in [0, 180] degrees, got {limit}")
    if az_offset.shape[0] != len(rotation):
        raise ValueError(f"{az_offset.shape[0]} rows of view parameters for {len(rotation)} rows")
    ok = (np.asarray(rotation)[:, None] <= 0) | (np.abs(az_offset) <= limit)
    ok[:, 0] = True
    return ok


def _balance_weights(args, labels, n: int) -> np.ndarray | None:
    power = getattr(args, "balance", None)
    if power is None:
        if getattr(args, "class_share", None):
            raise ValueError("--class-share needs --balance (the power for the other classes)")
        return None
    if labels is None:
        raise ValueError("--balance needs the class labels of the voxel cache")
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} training rows")
    w = class_weights(labels, power, getattr(args, "class_share", None))
    if getattr(args, "quiet", False) is False:
        labs = np.unique(labels)
        share = {str(c): round(float(w[labels == c].sum()), 3) for c in labs}
        log.info(f"class-balanced sampling (power {power}): {json.dumps(share)}")
    return w


def _augment_images(x: torch.Tensor, gen: torch.Generator, shift: int = 6) -> torch.Tensor:
    """Random shifts (pad + crop), scale jitter, brightness/contrast/gamma and noise so that
    preprocessed real photos look like the rendered views. ``x`` float (B, 1, H, W) in [0, 1]."""
    b, _, h, w = x.shape
    # scale jitter + shift through one affine grid (bilinear, background = 1 - white)
    s = 1.0 + (torch.rand(b, generator=gen) - 0.5) * 0.16
    tx = (torch.rand(b, generator=gen) - 0.5) * 2 * shift / (w / 2)
    ty = (torch.rand(b, generator=gen) - 0.5) * 2 * shift / (h / 2)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = s
    theta[:, 1, 1] = s
    theta[:, 0, 2] = tx
    theta[:, 1, 2] = ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    bg = x[:, :, :2, :2].mean(dim=(1, 2, 3), keepdim=True)  # corner = background level
    x = F.grid_sample(x - bg, grid, align_corners=False, padding_mode="zeros") + bg
    gamma = torch.exp((torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.6)
    x = x.clamp(0, 1) ** gamma
    contrast = 1.0 + (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.5
    bright = (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.2
    x = (x - 0.5) * contrast + 0.5 + bright
    x = x + 0.02 * torch.randn(x.shape, generator=gen)
    return x.clamp(0, 1)

"""Training of the TL-Octree network: stage 1 the octree autoencoder, stage 2 the image encoder.

Usage (one command per stage, or both)::

    python -m image2lego.training.train ae    --out runs/ae    [--epochs 6]
    python -m image2lego.training.train image --out runs/img   --ae runs/ae/final.pt
    python -m image2lego.training.train all   --out runs/tl

    # several processes (CPU: gloo; GPU: nccl), same flags:
    torchrun --nproc_per_node=2 -m image2lego.training.train ae --out runs/ae

Both stages use a fixed seed, show tqdm progress, and write a resumable checkpoint
(``<out>/<stage>_last.pt``, plain tensors and dicts, loadable with ``weights_only=True``) every
``--ckpt-minutes`` and at the end of every epoch; re-running the same command resumes from it.
``--max-minutes`` stops cleanly (checkpoint written) when the wall-time budget is spent.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..core.model import (
    ImageEncoder,
    LossWeights,
    ModelConfig,
    OctreeAutoencoder,
    block_options,
    octree_loss,
    octree_targets,
)
from ..core.sparse import sparse_octree_loss
from ..lego.errors import get_logger, logging_to_stdout
from . import minkowski as mk
from .checkpoints import (
    Resumed,
    _check_grown,
    _checkpoint_state,
    _finalise,
    _freeze_below,
    _resume,
    _warm_start,
    grow_state,
    import_weights,
    load_checkpoint,
    save_checkpoint,
)
from .evaluation import (
    choose_thresholds,
    decode_batches,
    encode_images,
    encode_voxels,
    ious_from_latents,
    recalibrate_bn,
    recalibrate_checkpoint,
)
from .export import (
    _git_commit,
    export_weights,
)
from .processes import (
    SEED,
    Dist,
    seed_everything,
    setup_threads,
    unwrap,
    wrap_ddp,
)
from .sampling import (
    _augment_images,
    _balance_weights,
    check_views_align,
    class_weights,
    epoch_order,
    load_set_pose_views,
    load_train_voxels,
    load_views,
    rotated_view_mask,
    synthetic_shapes,
    view_azimuth_offsets,
)

log = get_logger()

# Re-exported: the training package's helpers, where callers of train.py have found them.
__all__ = [
    "Dist",
    "Resumed",
    "SEED",
    "_augment_images",
    "_balance_weights",
    "_check_grown",
    "_checkpoint_state",
    "_finalise",
    "_freeze_below",
    "_git_commit",
    "_resume",
    "_warm_start",
    "check_views_align",
    "choose_thresholds",
    "class_weights",
    "decode_batches",
    "encode_images",
    "encode_voxels",
    "epoch_order",
    "export_weights",
    "grow_state",
    "import_weights",
    "ious_from_latents",
    "load_checkpoint",
    "load_set_pose_views",
    "load_train_voxels",
    "load_views",
    "rotated_view_mask",
    "view_azimuth_offsets",
    "recalibrate_bn",
    "recalibrate_checkpoint",
    "save_checkpoint",
    "seed_everything",
    "setup_threads",
    "synthetic_shapes",
    "unwrap",
    "wrap_ddp",
]


# --------------------------------------------------------------------------------------------
# process setup


# --------------------------------------------------------------------------------------------
# data


# --------------------------------------------------------------------------------------------
# checkpoints


# --------------------------------------------------------------------------------------------
# evaluation helpers (also used by benchmarks/eval_model.py)


# --------------------------------------------------------------------------------------------
# training loops


def _lr_at(step: int, total: int, base: float, warmup: int = 100, frac_time: float = 0.0) -> float:
    """Warm-up then cosine decay over the run; the run's progress is the larger of the step
    fraction and the spent fraction of the wall-time budget, so a run cut by ``--max-minutes``
    still ends at a low learning rate."""
    if step < warmup:
        return base * (step + 1) / warmup
    frac = min(1.0, max(frac_time, (step - warmup) / max(1, total - warmup)))
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))


def _progress(total: int, initial: int, disable: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=disable, desc=desc, mininterval=5.0,
                file=sys.stdout, dynamic_ncols=False, ncols=110)  # fmt: skip


class TrainLoop:
    """The one training loop of both stages: seeded epoch order (class-balanced, split across
    ranks), learning-rate schedule, tqdm progress, a checkpoint every ``--ckpt-minutes`` and at
    every epoch's end (resumable mid-epoch), the ``--max-minutes`` budget, one JSON line of
    history per epoch. A stage gives it ``step(idx) -> (loss, {name: float})`` for a batch of
    sample indices, what to do at the start of an epoch, and an ``evaluate() -> dict``."""

    def __init__(self, model, opt, cfg, args, d, ckpt_path: Path, *, desc: str, metric: str,
                 postfix_every: int, epochs: int, batch: int, seed: int, lr: float,
                 warmup: int, before_save=None) -> None:  # fmt: skip
        self.model, self.opt, self.cfg, self.args, self.d = model, opt, cfg, args, d
        #: called before every checkpoint (the ME backend copies its decoder into ``model``)
        self.before_save = before_save
        self.ckpt_path, self.desc, self.metric = ckpt_path, desc, metric
        self.postfix_every, self.epochs, self.batch, self.seed = postfix_every, epochs, batch, seed
        self.lr, self.warmup = lr, warmup

    def run(self, start: Resumed, n: int, weights, step, epoch_start, evaluate) -> int:
        """Train until ``epochs`` are done or the time budget is spent; the epoch reached."""
        args, d, opt = self.args, self.d, self.opt
        epoch, step_in_epoch, nstep = start.epoch, start.step_in_epoch, start.step
        history = list(start.history)
        total = math.ceil(n / (self.batch * d.world)) * self.epochs
        t_start = time.time() - 60 * start.minutes
        last_ckpt = time.time()

        def time_frac() -> float:
            if args.max_minutes is None:
                return 0.0
            return (time.time() - t_start) / 60 / args.max_minutes

        def save() -> None:
            if self.before_save is not None:
                self.before_save()
            if d.main:
                pos = (epoch, step_in_epoch, nstep)
                state = _checkpoint_state(self.model, opt, self.cfg, args, history, pos, t_start)
                save_checkpoint(self.ckpt_path, state)

        bar = _progress(total, nstep, not d.main or args.quiet, self.desc)
        stop = False
        while epoch < self.epochs and not stop:
            order = epoch_order(n, epoch, self.seed, d, weights)
            nb = math.ceil(len(order) / self.batch)
            epoch_start()
            run_loss, run_parts, nrun = 0.0, {}, 0
            for b in range(step_in_epoch, nb):
                idx = np.sort(order[b * self.batch : (b + 1) * self.batch])
                for g in opt.param_groups:
                    g["lr"] = _lr_at(nstep, total, self.lr, self.warmup, frac_time=time_frac())
                loss, parts = step(idx)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                nstep += 1
                step_in_epoch = b + 1
                run_loss += float(loss.detach())
                for r, v in parts.items():
                    run_parts[r] = run_parts.get(r, 0.0) + v
                nrun += 1
                bar.update(1)
                if nrun % self.postfix_every == 0:
                    bar.set_postfix_str(
                        f"ep {epoch} {self.metric} {run_loss / nrun:.4f} "
                        + " ".join(f"{r}:{run_parts[r] / nrun:.3f}" for r in sorted(run_parts))
                    )
                if d.any_flag(time_frac() >= 1.0):
                    stop = True
                    break
                if time.time() - last_ckpt > args.ckpt_minutes * 60:
                    save()
                    last_ckpt = time.time()
            if step_in_epoch >= nb:
                rec = {"epoch": epoch, "step": nstep, self.metric: run_loss / max(1, nrun),
                       "minutes": round((time.time() - t_start) / 60, 2)}  # fmt: skip
                if d.main:
                    rec.update(evaluate())
                history.append(rec)
                if d.main:
                    log.info(json.dumps(rec))
                epoch += 1
                step_in_epoch = 0
            save()
            last_ckpt = time.time()
        bar.close()
        if not self.ckpt_path.is_file():
            save()  # nothing to train (epochs already done): still leave a checkpoint
        return epoch


def train_autoencoder(args, d: Dist, voxels: np.ndarray | None = None, val=None) -> Path:
    """Stage 1. ``voxels`` (N, 32, 32, 32) bool overrides loading the cache (tests)."""
    out = Path(args.out)
    ckpt_path = out / "ae_last.pt"
    final_path = out / "ae_final.pt"
    if voxels is None and getattr(args, "synthetic", 0):
        voxels = synthetic_shapes(args.synthetic, args.seed)
        val = voxels[:8]
    labels = None
    if voxels is None:
        vs = load_train_voxels(args.cache, args.labels)
        voxels = vs.voxels
        labels = vs.label
        vval = load_train_voxels(args.cache, args.labels, "val").voxels
        rng = np.random.default_rng(0)
        val = vval[rng.choice(len(vval), size=min(256, len(vval)), replace=False)]
    cfg = ModelConfig.from_dict(json.loads(args.config)) if args.config else ModelConfig()
    me_backend = getattr(args, "backend", "dense") == "minkowski"
    if me_backend:
        _check_me_options(args)
        cfg = mk.export_config(cfg)  # ME's semantics: a neighbour that is not live is zero
    seed_everything(args.seed)
    # channels-last 3D tensors: oneDNN's convolutions run ~17% faster per step on this CPU
    # (0.78 s against 0.94 s, batch 16, 2 threads); same maths, same checkpoints.
    model = OctreeAutoencoder(cfg).to(d.device, memory_format=torch.channels_last_3d)
    me_net = None
    if me_backend:
        # the encoder is the dense model's own; the decoder is ME's, copied into the dense
        # model before every checkpoint, so checkpoints, resuming and export stay dense
        me_net = mk.MEAutoencoderNet(model.encoder, mk.MEOctreeDecoder(cfg)).to(d.device)
        opt = torch.optim.Adam(me_net.parameters(), lr=args.lr, foreach=True)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=args.lr, foreach=True)  # frozen: no grads
    lw = LossWeights(pos_weight=args.pos_weight, dice=args.dice)
    resumed = _resume(ckpt_path, model, opt, d)
    if not ckpt_path.is_file() and getattr(args, "init", None):
        resumed = resumed.fresh(
            _warm_start(Path(args.init), model, cfg, d, grow=getattr(args, "grow", False))
        )
    frozen = _freeze_below(model, getattr(args, "freeze_below", 0))
    if me_net is not None:
        mk.load_dense_decoder(me_net.decoder, model.decoder)
        net = wrap_ddp(me_net, d)
    else:
        net = wrap_ddp(model, d)
    weights = _balance_weights(args, labels, len(voxels))

    def ae_step(idx: np.ndarray):
        x = torch.from_numpy(voxels[idx]).float()[:, None].to(d.device)
        if args.flip:
            # mirror x (left/right) on half the batch: chairs are near-symmetric
            flip = torch.rand(len(x)) < 0.5
            x[flip] = x[flip].flip(2)
        x = x.contiguous(memory_format=torch.channels_last_3d)
        tg = octree_targets(x)
        if me_net is not None:
            levels, z = net(x, mode=args.prune, targets=tg, latent_noise=args.latent_noise)
            loss, parts = sparse_octree_loss(levels, tg)
        else:
            logits, z = net(
                x, mode=args.prune, targets=tg, latent_noise=args.latent_noise,
                return_latent=True,
            )  # fmt: skip
            if frozen:
                logits = {r: lg for r, lg in logits.items() if r >= args.freeze_below}
            loss, parts = octree_loss(logits, tg, lw)
        if args.latent_l2 > 0:
            loss = loss + args.latent_l2 * (z**2).mean()
        return loss, parts

    def ae_epoch_start():
        net.train()
        for m in frozen:
            m.eval()  # frozen levels keep their (recalibrated) BatchNorm statistics

    def ae_evaluate() -> dict:
        if val is None:
            return {}
        z = encode_voxels(model.encoder, val)
        dec = model.decoder if me_net is None else mk.DenseLogits(me_net.decoder)
        vi = ious_from_latents(dec, z, val)
        return {f"val_iou{r}": round(float(v.mean()), 4) for r, v in vi.items()}

    def sync_me() -> None:
        assert me_net is not None
        mk.store_dense_decoder(me_net.decoder, model.decoder)

    epoch = TrainLoop(
        model, opt, cfg, args, d, ckpt_path, desc="ae", metric="loss", postfix_every=20,
        epochs=args.epochs, batch=args.batch, seed=args.seed, lr=args.lr, warmup=args.warmup,
        before_save=None if me_net is None else sync_me,
    ).run(resumed, len(voxels), weights, ae_step, ae_epoch_start, ae_evaluate)  # fmt: skip
    if me_net is not None:
        sync_me()
    if d.enabled:
        # DDP keeps parameters in step; BatchNorm running stats are per rank: take rank 0's.
        for buf in model.buffers():
            dist.broadcast(buf, 0)
    if getattr(args, "save_rank_weights", False):
        save_checkpoint(out / f"ae_rank{d.rank}.pt", {"model": model.state_dict()})
    if d.main and epoch >= args.epochs:
        _finalise(ckpt_path, final_path)
        if me_net is None or not _has_bottleneck(cfg):
            recalibrate_checkpoint(args, final_path, final_path, voxels)
        else:  # the dense path feeds pruned neighbours ELU(BN(0)) in a bottleneck, ME zero
            log.info("BatchNorm statistics kept from ME training (bottleneck levels)")
    d.barrier()
    return final_path if final_path.is_file() else ckpt_path


def _has_bottleneck(cfg: ModelConfig) -> bool:
    return any(block_options(cfg, r)["bottleneck"] for r in cfg.resolutions)


def _check_me_options(args) -> None:
    """The options the MinkowskiEngine backend does not implement, refused before work."""
    mk.require()
    bad = [
        name
        for name, on in (
            ("--freeze-below", getattr(args, "freeze_below", 0)),
            ("--pos-weight", getattr(args, "pos_weight", 1.0) != 1.0),
            ("--dice", getattr(args, "dice", 0.0)),
        )
        if on
    ]
    if bad:
        raise ValueError(f"--backend minkowski does not support {', '.join(bad)}")


def _views_from_parts(args, ae):
    """Views rendered by row subsets (``part*.npz``: ``rows``, ``v0`` set pose, ``v1_rows``,
    ``v1`` one jittered view), with training.render and the same per-row seeds as
    ``render_cache``; used when the full ``views128.npz`` is not rendered yet."""
    from .data import load_voxels

    allv = load_voxels(cache=args.cache)
    rows, imgs = [], []
    for p in sorted(Path(args.views_parts).glob("part*.npz")):
        with np.load(p) as z:
            rows += [z["rows"], z["v1_rows"]]
            imgs += [z["v0"], z["v1"]]
    rows_a = np.concatenate(rows)
    imgs_a = np.concatenate(imgs)
    is_v0 = np.concatenate([np.ones(len(r), bool) if k % 2 == 0 else np.zeros(len(r), bool)
                            for k, r in enumerate(rows)])  # fmt: skip
    tr = allv.split[rows_a] == "train"
    if args.labels:
        tr &= np.isin(allv.label[rows_a], args.labels)
    va = (allv.split[rows_a] == "val") & (allv.label[rows_a] == "chair") & is_v0
    uniq, inv = np.unique(rows_a[tr], return_inverse=True)
    z = encode_voxels(ae.encoder, allv.voxels[uniq])
    views = imgs_a[tr][:, None]
    voxels = allv.voxels[uniq][inv]
    rng = np.random.default_rng(0)
    vi = np.flatnonzero(va)
    vi = vi[rng.choice(len(vi), size=min(256, len(vi)), replace=False)]
    log.info(f"views from parts: {len(views)} train images of {len(uniq)} rows, "
          f"{int(va.sum())} val chair set-pose views")  # fmt: skip
    return views, voxels, z[inv], imgs_a[vi], allv.voxels[rows_a[vi]]


def train_image_encoder(
    args, d: Dist, views: np.ndarray | None = None, voxels: np.ndarray | None = None
) -> Path:
    """Stage 2: MSE from images to the frozen autoencoder's latents (computed once)."""
    out = Path(args.out)
    ckpt_path = out / "image_last.pt"
    final_path = out / "image_final.pt"
    ae_path = Path(args.ae) if args.ae else out / "ae_final.pt"
    if not ae_path.is_file():
        raise FileNotFoundError(f"autoencoder checkpoint {ae_path} not found (train stage ae)")
    st_ae = load_checkpoint(ae_path)
    if not st_ae.get("bn_recalibrated"):
        raise ValueError(
            f"{ae_path} has no precise BatchNorm statistics; run the 'recal' stage first"
        )
    cfg = ModelConfig.from_dict(json.loads(st_ae["config"]))
    ae = OctreeAutoencoder(cfg)
    ae.load_state_dict(st_ae["model"])
    ae.eval()
    val_views = val_vox = None
    latents = None
    img_labels = None
    allowed = None  # (rows, views) bool: views a row may be trained on (None: all)
    if views is None and getattr(args, "views_parts", None):
        views, voxels, latents, val_views, val_vox = _views_from_parts(args, ae)
    if views is None:
        from .data import load_voxels

        allv = load_voxels(cache=args.cache)
        views_all = load_views(args.cache)
        n = check_views_align(args.cache, allv)
        keep = np.zeros(len(allv), dtype=bool)
        keep[:n] = True
        if args.labels:
            keep &= np.isin(allv.label, args.labels)
        tr = keep & (allv.split == "train")
        va = keep & (allv.split == "val") & (allv.label == "chair")
        voxels = allv.voxels[tr]
        img_labels = allv.label[tr]
        views = views_all[:n][tr[:n]]
        limit = getattr(args, "rotated_azimuth_max", None)
        if limit is not None:
            allowed = rotated_view_mask(
                allv.rotation[:n], view_azimuth_offsets(args.cache)[:n], limit
            )[tr[:n]]
            rot = allv.rotation[tr] > 0
            log.info(
                f"rotated rows: {allowed[rot].mean():.1%} of their views within "
                f"{limit:g} degrees of the set pose's azimuth ({rot.sum()} rows)"
            )
        rng = np.random.default_rng(0)
        vi = np.flatnonzero(va[:n])
        vi = vi[rng.choice(len(vi), size=min(256, len(vi)), replace=False)] if len(vi) else vi
        val_views, val_vox = views_all[vi, 0], allv.voxels[vi]
    if views.ndim == 3:
        views = views[:, None]
    cache_lat = out / "latents.pt"
    if latents is not None:
        pass
    elif cache_lat.is_file() and load_checkpoint(cache_lat)["n"] == len(voxels):
        latents = load_checkpoint(cache_lat)["z"]
    else:
        latents = encode_voxels(ae.encoder, voxels)
        if d.main:
            save_checkpoint(cache_lat, {"z": latents, "n": len(voxels)})
    seed_everything(args.seed + 1)
    # channels-last 2D: a step of 64 costs 3.6 s instead of 4.8 s on one thread (measured)
    model = ImageEncoder(cfg).to(d.device, memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr_image, weight_decay=args.wd_image)
    resumed = _resume(ckpt_path, model, opt, d)
    if not ckpt_path.is_file() and getattr(args, "init_image", None):
        resumed = resumed.fresh(_warm_start(Path(args.init_image), model, cfg, d))
    net = wrap_ddp(model, d)
    gen = torch.Generator().manual_seed(args.seed + 17 + 1000 * resumed.epoch + d.rank)
    lat_scale = latents.std().item()
    weights = _balance_weights(args, img_labels, len(views))
    nviews = views.shape[1]

    def image_step(idx: np.ndarray):
        v = torch.randint(0, nviews, (len(idx),), generator=gen).numpy()
        if args.set_pose_fraction > 0:
            v[torch.rand(len(idx), generator=gen).numpy() < args.set_pose_fraction] = 0
        if allowed is not None:
            v[~allowed[idx, v]] = 0
        x = torch.from_numpy(views[idx, v]).float()[:, None] / 255.0
        if args.augment:
            x = _augment_images(x, gen)
        pred = net(x.to(d.device).contiguous(memory_format=torch.channels_last))
        return F.mse_loss(pred, latents[idx].to(d.device)) / lat_scale**2, {}

    def image_evaluate() -> dict:
        if val_views is None:
            return {}
        z = encode_images(model, val_views)
        vi = ious_from_latents(ae.decoder, z, val_vox)
        rec = {f"val_iou{r}": round(float(x.mean()), 4) for r, x in vi.items()}
        zt = encode_voxels(ae.encoder, val_vox)
        rec["val_nmse"] = float(F.mse_loss(z, zt)) / lat_scale**2
        return rec

    epoch = TrainLoop(
        model, opt, cfg, args, d, ckpt_path, desc="image", metric="nmse", postfix_every=10,
        epochs=args.epochs_image, batch=args.batch_image, seed=args.seed + 1,
        lr=args.lr_image, warmup=100,
    ).run(resumed, len(views), weights, image_step, net.train, image_evaluate)  # fmt: skip
    if d.main and epoch >= args.epochs_image:
        _finalise(ckpt_path, final_path)
    d.barrier()
    return final_path if final_path.is_file() else ckpt_path


# --------------------------------------------------------------------------------------------
# export to the shipped format


# --------------------------------------------------------------------------------------------
# command line


def _class_share(text: str) -> tuple[str, float]:
    """``--class-share CLASS=SHARE`` → (class, share); a one-line argparse error otherwise."""
    name, sep, value = text.partition("=")
    try:
        share = float(value)
    except ValueError:
        share = float("nan")
    if not sep or not name or not 0.0 < share < 1.0:
        raise argparse.ArgumentTypeError(f"expected CLASS=SHARE with 0 < SHARE < 1, got {text!r}")
    return name, share


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m image2lego.training.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("stage", choices=["ae", "recal", "image", "all", "export", "import"])
    p.add_argument("--out", default="runs/tl_octree", help="checkpoint folder (outside the repo)")
    p.add_argument("--cache", default=None, help="voxel/view cache (default $IMAGE2LEGO_CACHE)")
    p.add_argument("--labels", nargs="*", default=None, help="classes to train on (default all)")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--epochs", type=int, default=6, help="autoencoder epochs")
    p.add_argument("--batch", type=int, default=16, help="autoencoder batch (paper: 16)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--config", default=None, help="ModelConfig as JSON (channels)")
    p.add_argument("--init", default=None, help="warm-start the autoencoder from a checkpoint")
    p.add_argument("--grow", action="store_true",
                   help="--init from a smaller configuration (function-preserving)")  # fmt: skip
    p.add_argument("--freeze-below", type=int, default=0,
                   help="train only the decoder levels at this resolution and above")  # fmt: skip
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument(
        "--backend",
        default="dense",
        choices=["dense", "minkowski"],
        help="autoencoder decoder engine: dense PyTorch (default) or MinkowskiEngine "
        "sparse tensors (training only; checkpoints and weights stay dense)",
    )
    p.add_argument("--prune", default="union", choices=["gt", "union", "pred", "none"],
                   help="which cells the decoder expands while training")  # fmt: skip
    p.add_argument("--pos-weight", type=float, default=1.0)
    p.add_argument("--dice", type=float, default=0.0)
    p.add_argument("--flip", action="store_true", help="mirror-x augmentation")
    p.add_argument("--balance", type=float, default=None, metavar="POWER",
                   help="class-balanced sampling: class c drawn ∝ n_c**POWER (0 = equal, "
                        "0.5 = square root; default off)")  # fmt: skip
    p.add_argument("--class-share", type=_class_share, action="append", default=None,
                   metavar="CLASS=SHARE", dest="class_share_items",
                   help="with --balance: pin a class's share of the draws (e.g. chair=0.4); "
                        "repeatable, the other classes split the rest by --balance")  # fmt: skip
    p.add_argument("--weights-in", default=None,
                   help="stage 'import': a weights/ folder to turn into checkpoints")  # fmt: skip
    p.add_argument("--latent-noise", type=float, default=0.0)
    p.add_argument("--latent-l2", type=float, default=0.0)
    p.add_argument("--ae", default=None, help="autoencoder checkpoint for the image stage")
    p.add_argument(
        "--init-image",
        default=None,
        help="warm-start the image encoder from a checkpoint (e.g. the previous run's)",
    )
    p.add_argument("--views-parts", default=None, help="folder of part*.npz partial renders")
    p.add_argument("--epochs-image", type=int, default=6)
    p.add_argument("--batch-image", type=int, default=64)
    p.add_argument("--lr-image", type=float, default=1e-3)
    p.add_argument("--wd-image", type=float, default=1e-5)
    p.add_argument("--set-pose-fraction", type=float, default=0.5,
                   help="share of image samples forced to view 0 (the set pose)")  # fmt: skip
    p.add_argument("--rotated-azimuth-max", type=float, default=None,
                   help="rotated rows (ModelNet40 chairs) train only on views within this "
                   "many degrees of the set pose's azimuth, else on the set pose (15: half "
                   "the 30-degree rotation step; default: every view)")  # fmt: skip
    p.add_argument("--no-augment", dest="augment", action="store_false")
    p.add_argument("--max-minutes", type=float, default=None, help="wall-time budget per stage")
    p.add_argument("--ckpt-minutes", type=float, default=3.0)
    p.add_argument("--recal-samples", type=int, default=2048,
                   help="training rows for the precise-BatchNorm pass")  # fmt: skip
    p.add_argument("--image", default=None, help="image-encoder checkpoint for export")
    p.add_argument("--weights-out", default=None, help="export folder (default weights/)")
    p.add_argument("--threshold-samples", type=int, default=512)
    p.add_argument("--fp32", action="store_true", help="export float32 instead of float16")
    p.add_argument("--synthetic", type=int, default=0,
                   help="train the autoencoder on N procedural shapes (smoke tests)")  # fmt: skip
    p.add_argument("--save-rank-weights", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--quiet", action="store_true", help="no progress bar, warnings only")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.class_share = dict(args.class_share_items) if args.class_share_items else None
    # progress lines on stdout (--quiet: the bar goes, warnings stay); library use logs only
    # where the caller's logging configuration sends it
    with logging_to_stdout(logging.WARNING if args.quiet else logging.INFO):
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    setup_threads(args.threads)
    if args.stage == "recal":
        src = Path(args.ae) if args.ae else Path(args.out) / "ae_last.pt"
        dst = recalibrate_checkpoint(args, src, Path(args.out) / "ae_final.pt")
        log.info(f"recalibrated autoencoder: {dst}")
        return 0
    if args.stage == "import":
        ae_p, img_p = import_weights(args.weights_in, Path(args.out))
        log.info(f"imported {args.weights_in or 'weights/'}: {ae_p}, {img_p}")
        return 0
    if args.stage == "export":
        if args.weights_out is None:
            from ..core.weights import default_weights_dir

            args.weights_out = str(default_weights_dir())
        export_weights(args)
        return 0
    d = Dist()
    try:
        if args.stage in ("ae", "all"):
            path = train_autoencoder(args, d)
            if d.main:
                log.info(f"autoencoder checkpoint: {path}")
            if args.stage == "all":
                args.ae = str(path)
        if args.stage in ("image", "all"):
            path = train_image_encoder(args, d)
            if d.main:
                log.info(f"image encoder checkpoint: {path}")
    finally:
        d.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

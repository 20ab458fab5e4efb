"""Resumable checkpoints (plain tensors and dicts, read with ``weights_only=True``), resuming,
warm starts, growing a model, freezing levels."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..core.model import (
    ModelConfig,
    OctreeAutoencoder,
)
from ..lego.errors import get_logger
from ..lego.fileio import atomic_path
from .sampling import synthetic_shapes

log = get_logger()


@dataclass(frozen=True)
class Resumed:
    """Where a run starts: a checkpoint's position, or ``(0, 0, 0)`` for a fresh one."""

    epoch: int = 0
    step_in_epoch: int = 0
    step: int = 0
    history: list = field(default_factory=list)
    minutes: float = 0.0  # training time already spent (the --max-minutes budget counts it)

    def fresh(self, history: list) -> Resumed:
        return Resumed(history=history)


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path, mkdir=True) as tmp:
        torch.save(state, tmp)


def _finalise(last: Path, final: Path) -> None:
    """A finished run's ``*_final.pt``: a copy of its last checkpoint (atomically)."""
    with atomic_path(final) as tmp:
        shutil.copyfile(last, tmp)


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _checkpoint_state(model, opt, cfg, args, history, pos, t_start: float) -> dict:
    """What a resumable checkpoint holds (read back by :func:`_resume`)."""
    epoch, step_in_epoch, step = pos
    return {
        "model": model.state_dict(),
        "opt": opt.state_dict(),
        "epoch": epoch,
        "step_in_epoch": step_in_epoch,
        "step": step,
        "config": json.dumps(cfg.to_dict()),
        "args": json.dumps(vars(args), default=str),
        "history": json.dumps(history),
        "rng": torch.get_rng_state(),
        "minutes": (time.time() - t_start) / 60,
    }


def _warm_start(init: Path, model: nn.Module, cfg: ModelConfig, d, grow: bool = False):
    """Fine-tuning: the weights of another run's checkpoint (same configuration, or with
    ``grow`` a wider / deeper one, see :func:`grow_state`); a fresh optimiser and schedule.
    Returns the history that records where the weights came from."""
    st = load_checkpoint(init)
    old_cfg = ModelConfig.from_dict(json.loads(st["config"]))
    grown = old_cfg != cfg
    if grown and not grow:
        raise ValueError(f"--init {init} has another model configuration (use --grow)")
    if grown:
        model.load_state_dict(grow_state(st["model"], model.state_dict()))
        _check_grown(st["model"], old_cfg, model)
    else:
        model.load_state_dict(st["model"])
    if d.main:
        log.info(f"initialised from {init}" + (" (grown)" if grown else ""))
    return [{"init": str(init), "init_history": json.loads(st.get("history", "[]"))}]


def _check_grown(old_state: dict, old_cfg: ModelConfig, model: nn.Module) -> None:
    """The grown autoencoder must give the old one's logits (eval mode, a few shapes)."""
    if not isinstance(model, OctreeAutoencoder):
        raise ValueError("--grow applies to the autoencoder only")
    ref = OctreeAutoencoder(old_cfg)
    ref.load_state_dict(old_state)
    x = torch.from_numpy(synthetic_shapes(4, seed=0)).float()[:, None]
    was = model.training
    with torch.no_grad():
        a, b = ref.eval()(x), model.eval()(x)
    model.train(was)
    worst = max(float((a[r] - b[r]).abs().max()) for r in a)
    if worst > 1e-3:
        raise ValueError(f"grown model is not function-preserving (logits differ by {worst:.3g})")


def grow_state(old: dict, new: dict) -> dict:
    """Function-preserving transfer of ``old`` weights into a wider / deeper model's state
    ``new`` (Net2Net-style): every tensor of ``old`` is copied into the leading slice of its
    counterpart; weights reading a *new input* channel are zeroed (so new channels change no
    output) while new output channels keep their fresh initialisation; a new residual branch
    (``conv`` / ``bn2`` of a block that had none) starts with a zero BatchNorm scale, so it adds
    ELU(0) = 0. The grown network computes exactly what the old one did."""
    dropped = sorted(set(old) - set(new))
    if dropped:
        raise ValueError(f"cannot grow: the new model has no {dropped[:3]}")
    out = {}
    for k, v in new.items():
        v = v.clone()
        if k in old:
            o = old[k]
            if o.dim() != v.dim() or any(a > b for a, b in zip(o.shape, v.shape, strict=True)):
                raise ValueError(f"cannot grow {k}: {tuple(o.shape)} → {tuple(v.shape)}")
            if v.dim() >= 2:
                # ConvTranspose weights are (in, out, ...); Conv and Linear are (out, in, ...)
                cin = 0 if k.endswith("up.weight") else 1
                v.narrow(cin, o.shape[cin], v.shape[cin] - o.shape[cin]).zero_()
            v[tuple(slice(0, n) for n in o.shape)] = o
        else:
            block = k.rsplit(".conv", 1)[0] if ".conv" in k else k.rsplit(".bn2", 1)[0]
            if f"{block}.bn2.weight" in old or block == k:
                raise ValueError(f"cannot grow: {k} is new and not part of a new residual branch")
            if k == f"{block}.bn2.weight":
                v.zero_()  # new residual branch: identity at the start
        out[k] = v
    return out


def _freeze_below(model: OctreeAutoencoder, res: int) -> list[nn.Module]:
    """Train only the decoder levels at ``res`` and above (0 = everything): the encoder and
    the coarser levels are frozen (no gradients, BatchNorm in eval mode). Returns the frozen
    modules."""
    if not res:
        return []
    dec = model.decoder
    if res not in dec.cfg.resolutions:
        raise ValueError(f"--freeze-below {res}: not a decoder resolution {dec.cfg.resolutions}")
    frozen: list[nn.Module] = [model.encoder]
    frozen += [b for b, r in zip(dec.blocks, dec.cfg.resolutions, strict=True) if r < res]
    frozen += [h for r, h in dec.heads.items() if int(r) < res]
    for m in frozen:
        m.requires_grad_(False)
    return frozen


def _resume(ckpt_path: Path, model, opt, d):
    """Load a resumable checkpoint if there is one (its :class:`Resumed` position); a fresh
    start otherwise."""
    if not ckpt_path.is_file():
        return Resumed()
    st = load_checkpoint(ckpt_path)
    model.load_state_dict(st["model"])
    opt.load_state_dict(st["opt"])
    torch.set_rng_state(st["rng"])
    if d.main:
        log.info(f"resumed {ckpt_path} at epoch {st['epoch']} step {st['step']}")
    history = json.loads(st.get("history", "[]"))
    return Resumed(
        st["epoch"], st["step_in_epoch"], st["step"], history, float(st.get("minutes", 0.0))
    )


def import_weights(weights_dir: str | Path | None, out: Path) -> tuple[Path, Path]:
    """Shipped weights (safetensors, float16) -> ``<out>/ae_final.pt`` (marked BatchNorm
    recalibrated: the shipped statistics are the precise ones) and ``<out>/image_final.pt``,
    so a fine-tuning round can start from what ships (``--init`` / ``--init-image``)."""
    from ..core.weights import load_weights

    w = load_weights(weights_dir)
    cfg = json.dumps(w.config.to_dict())
    src = str(weights_dir or "weights/")
    hist = json.dumps([{"imported": src, "meta": w.meta.get("training", {})}], default=str)
    paths = []
    for name, mod in (("ae_final.pt", w.autoencoder), ("image_final.pt", w.image_encoder)):
        st = {k: v.float() if v.is_floating_point() else v for k, v in mod.state_dict().items()}
        p = out / name
        save_checkpoint(p, {"model": st, "config": cfg, "history": hist, "bn_recalibrated": True,
                            "args": json.dumps({"imported": True})})  # fmt: skip
        paths.append(p)
    return paths[0], paths[1]

"""Export of trained checkpoints to the shipped safetensors weights (+ metadata)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..core.model import (
    ImageEncoder,
    ModelConfig,
    OctreeAutoencoder,
)
from ..lego.errors import get_logger
from .checkpoints import load_checkpoint
from .evaluation import choose_thresholds, encode_images, encode_voxels
from .sampling import load_set_pose_views

log = get_logger()


def _git_commit() -> str:
    import subprocess

    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
            cwd=Path(__file__).resolve().parents[1],
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return ""


def export_weights(args) -> dict:
    """Checkpoints → ``weights/`` (safetensors + JSON), thresholds chosen on training rows."""
    from ..core.weights import save_weights
    from .data import load_voxels

    out = Path(args.out)
    ae_path = Path(args.ae) if args.ae else out / "ae_final.pt"
    st_ae = load_checkpoint(ae_path)
    cfg = ModelConfig.from_dict(json.loads(st_ae["config"]))
    ae = OctreeAutoencoder(cfg)
    ae.load_state_dict(st_ae["model"])
    ae.eval()
    img = None
    img_path = Path(args.image) if args.image else out / "image_final.pt"
    st_img = None
    if img_path.is_file():
        st_img = load_checkpoint(img_path)
        img = ImageEncoder(cfg)
        img.load_state_dict(st_img["model"])
        img.eval()
    allv = load_voxels(cache=args.cache)
    rng = np.random.default_rng(args.seed)
    tr = np.flatnonzero(allv.split == "train")
    if args.labels:
        tr = tr[np.isin(allv.label[tr], args.labels)]
    if img is not None:
        vrows, vimgs = load_set_pose_views(args.cache, args.views_parts)
        pos = np.full(len(allv), -1)
        pos[vrows] = np.arange(len(vrows))
        tr = tr[pos[tr] >= 0]
    pick = np.sort(rng.choice(tr, size=min(args.threshold_samples, len(tr)), replace=False))
    vox = allv.voxels[pick]
    thr = choose_thresholds(ae.decoder, encode_voxels(ae.encoder, vox), vox)
    log.info(f"autoencoder thresholds (train rows): {thr}")
    meta = {
        "training": {
            "data": "voxels32.npz (training.data): "
            + ", ".join(f"{k} {v}" for k, v in allv.counts().items()),
            "commit": _git_commit(),
            "ae_checkpoint_args": json.loads(st_ae["args"]),
            "ae_history": json.loads(st_ae["history"]),
            "ae_minutes": round(float(st_ae.get("minutes", 0.0)), 1),
        },
    }
    if img is not None:
        zi = encode_images(img, vimgs[pos[pick]])
        ithr = choose_thresholds(ae.decoder, zi, vox)
        log.info(f"image thresholds (train rows, set-pose view): {ithr}")
        meta["image_thresholds"] = {str(r): t for r, t in ithr.items()}
        meta["training"].update(
            image_checkpoint_args=json.loads(st_img["args"]),
            image_history=json.loads(st_img["history"]),
            image_minutes=round(float(st_img.get("minutes", 0.0)), 1),
        )
    files = save_weights(args.weights_out, ae, img, thr, meta=meta, fp16=not args.fp32)
    for k, p in files.items():
        log.info(f"{k}: {p} ({p.stat().st_size / 1e6:.2f} MB)")
    return {k: str(p) for k, p in files.items()}

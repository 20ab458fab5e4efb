"""Class latents for caption → LEGO: per class, a few typical shapes as autoencoder latents.

For each class of the voxel cache, up to ``--per-class`` training models are encoded with the
shipped autoencoder; k-means (``--variants`` clusters) groups their latents and each
cluster's medoid (the real model nearest its centre) becomes one variant, the largest
cluster first. Only latents are kept (256 numbers per variant), never the data: decoding
them with the shipped decoder gives the shape. The file records the SHA-256 of the
autoencoder it was made with; :mod:`image2lego.core.caption` refuses it for other weights.

    python -m image2lego.training.class_latents [--cache DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from ..core.weightsmeta import AE_FILE, default_weights_dir
from ..lego.errors import get_logger, logging_to_stdout
from ..lego.fileio import atomic_path

log = get_logger()
OUT_NAME = "class_latents.safetensors"


def class_latents(
    voxels: np.ndarray,
    labels: np.ndarray,
    encode,
    decode,
    per_class: int = 120,
    variants: int = 3,
    seed: int = 0,
    min_cells: int = 40,
) -> dict[str, np.ndarray]:
    """``{label: float32 [v, latent]}``: the medoid latents of each class's k-means clusters,
    biggest cluster first; variants whose decoded 32³ shape has under ``min_cells`` cells
    are left out. ``encode(grids) -> latents`` and ``decode(latents) -> bool grids``."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for label in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == label)
        if len(idx) > per_class:
            idx = np.sort(rng.choice(idx, per_class, replace=False))
        z = np.concatenate([encode(voxels[idx[i : i + 32]]) for i in range(0, len(idx), 32)])
        k = min(variants, len(z))
        km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(z)
        sizes = np.bincount(km.labels_, minlength=k)
        keep = []
        for c in np.argsort(-sizes, kind="stable"):
            members = np.flatnonzero(km.labels_ == c)
            d = np.linalg.norm(z[members] - km.cluster_centers_[c], axis=1)
            keep.append(z[members[int(np.argmin(d))]])
        lat = np.stack(keep).astype(np.float32)
        cells = decode(lat).reshape(len(lat), -1).sum(axis=1)
        lat = lat[cells >= min_cells]
        if len(lat):
            out[str(label)] = lat
        log.info(f"{label}: {len(idx)} models → {len(lat)} variants ({cells.tolist()} cells)")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m image2lego.training.class_latents")
    ap.add_argument("--cache", default=None, help="voxel cache (default: the training cache)")
    ap.add_argument("--weights", type=Path, default=None, help="weights folder (default: shipped)")
    ap.add_argument("--out", type=Path, default=None, help=f"default: <weights>/{OUT_NAME}")
    ap.add_argument("--per-class", type=int, default=120)
    ap.add_argument("--variants", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from safetensors.numpy import save_file

    from .data import CHAIR_CANONICAL_ROTATION, load_voxels

    wdir = args.weights or default_weights_dir()
    out = args.out or wdir / OUT_NAME
    with logging_to_stdout(logging.INFO):
        t0 = time.perf_counter()
        import torch

        from ..core.inference import Predictor

        pred = Predictor.load(wdir, threads=1)
        ae = pred.weights.autoencoder
        assert ae is not None
        thr = dict(pred.thresholds)
        vs = load_voxels(cache=args.cache, split="train")
        upright = (vs.rotation == 0) | (vs.rotation == CHAIR_CANONICAL_ROTATION)

        def encode(grids):
            x = torch.from_numpy(np.asarray(grids, np.float32))[:, None]
            return pred._run(lambda: ae.encoder(x).numpy())

        def decode(z):
            g = pred._run(lambda: pred._decode(torch.from_numpy(z), (32,), thr))
            return np.stack([d[32] for d in g])

        lat = class_latents(
            vs.voxels[upright], vs.label[upright], encode, decode,
            args.per_class, args.variants, args.seed,
        )  # fmt: skip
        sha = hashlib.sha256((Path(wdir) / AE_FILE).read_bytes()).hexdigest()
        meta = {
            "ae_sha256": sha,
            "command": "python -m image2lego.training.class_latents "
            + " ".join(argv or sys.argv[1:]),
            "per_class": str(args.per_class),
            "variants": json.dumps({k: len(v) for k, v in lat.items()}),
        }
        with atomic_path(out) as tmp:
            save_file(lat, str(tmp), metadata=meta)
        log.info(f"wrote {out}: {len(lat)} classes in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

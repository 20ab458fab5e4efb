"""Issue #16's azimuth miss, measured: in which frame does an off-pose prediction come out?

    .venv/bin/python benchmarks/eval_offpose_frame.py --cache ~/.cache/image2lego/learn16 \
        --weights runs/v8w --tag v8

The off-pose models of ``eval_classes.py --max-models 20 --cap-chairs --offpose 5`` (the same
seeded pick: 5 validation models per ShapeNet class), rendered at the set pose's azimuth
+0 / ±30 / ±60 / 180 degrees. For each pose, the 32³ image → model prediction is scored
against the target turned about the vertical axis by each of the 12 turns of 30 degrees:

* ``canonical``: against the target itself (the object's frame: what ``eval_classes`` scores);
* ``viewer``: against the target turned with the camera (the object as the camera sees it
  relative to the set pose: a camera turned by ``daz`` shows the object turned by ``-daz``);
* ``best_of_12``: the best turn per model (the shape's quality, whatever its frame);
* ``best_turn``: how many models score best at each turn (0 = the object's own frame).

``turn_roundtrip``: a target turned and turned back against itself (the resampling loss of the
30-degree turns; multiples of 90 are exact). Writes
``benchmarks/results/offpose_frame_<tag>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from eval_classes import cap_groups  # noqa: E402

TURNS = tuple(30 * k for k in range(12))
AZIMUTHS = (0, 30, -30, 60, -60, 180)


def turn(grid: np.ndarray, deg: float) -> np.ndarray:
    """``grid`` turned by ``deg`` degrees about Z (counter-clockwise seen from above) about
    the grid's centre: exact for multiples of 90, trilinear and thresholded otherwise."""
    from scipy import ndimage

    k = round(deg / 90.0)
    if abs(deg - 90 * k) < 1e-9:
        return np.rot90(grid, k % 4, axes=(0, 1))
    f = ndimage.rotate(grid.astype(np.float32), deg, axes=(0, 1), reshape=False, order=1)
    return f > 0.5


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    u = (a | b).sum()
    return float((a & b).sum() / u) if u else 1.0


def frame_scores(pred: np.ndarray, targets: dict[int, np.ndarray], daz: float) -> dict:
    """The figures above for one pose: ``pred`` (N, 32, 32, 32) bool, ``targets`` {turn: the
    N targets turned by it}."""
    by = np.array([[_iou(p, targets[t][i]) for t in TURNS] for i, p in enumerate(pred)])
    best = by.argmax(1)
    viewer = TURNS.index(int(-daz) % 360)
    return {
        "canonical": round(float(by[:, 0].mean()), 4),
        "viewer": round(float(by[:, viewer].mean()), 4),
        "best_of_12": round(float(by.max(1).mean()), 4),
        "best_turn": {int(t): int(n) for t, n in zip(TURNS, np.bincount(best, minlength=12)) if n},
    }


@torch.no_grad()
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cache", required=True, help="cache folder with voxels32 + views128")
    ap.add_argument("--weights", default=None, help="weights folder (default: shipped weights/)")
    ap.add_argument("--tag", default="shipped")
    ap.add_argument("--per-class", type=int, default=5, help="models per ShapeNet class")
    ap.add_argument(
        "--out", default=None, help="default benchmarks/results/offpose_frame_<tag>.json"
    )
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from image2lego.core.camera import SET_POSE
    from image2lego.core.weights import load_weights
    from image2lego.training.data import load_voxels
    from image2lego.training.render import Renderer, voxel_surface
    from image2lego.training.train import decode_batches, encode_images

    w = load_weights(args.weights)
    allv = load_voxels(cache=args.cache)
    val = cap_groups(allv, np.flatnonzero(allv.split == "val"), 20)
    groups = np.array([f"{s}/{lab}" for s, lab in zip(allv.source[val], allv.label[val])])
    rng = np.random.default_rng(0)  # the pick of eval_classes.offpose
    pick: list[int] = []
    for g in sorted(set(groups.tolist())):
        if g.startswith("shapenet/"):
            rows = np.flatnonzero(groups == g)
            pick += sorted(rng.choice(rows, min(args.per_class, len(rows)), replace=False).tolist())
    if not pick:
        raise SystemExit(f"{args.cache} has no ShapeNet validation rows")
    vox = allv.voxels[val[np.array(pick)]]
    targets = {t: np.stack([turn(g, t) for g in vox]) for t in TURNS}
    back = {t: np.mean([_iou(turn(a, -t), g) for a, g in zip(targets[t], vox)]) for t in TURNS}
    res: dict = {
        "weights": str(args.weights or "weights/"),
        "models": len(vox),
        "turn_roundtrip": {int(t): round(float(v), 4) for t, v in back.items()},
        "poses": {},
    }
    thr = w.image_thresholds
    with Renderer() as r:
        surf = [voxel_surface(g) for g in vox]
        for daz in AZIMUTHS:
            view = replace(SET_POSE, azimuth=SET_POSE.azimuth + daz)
            imgs = np.stack([r.frame(*r.raw(v, f, view), view) for v, f in surf])
            logits = decode_batches(
                w.autoencoder.decoder, encode_images(w.image_encoder, imgs), thr
            )
            pred = (logits[32][:, 0] > thr[32]).numpy()
            res["poses"][f"az{daz:+d}"] = rec = frame_scores(pred, targets, daz)
            print(f"{args.tag} az{daz:+d}: {rec}", flush=True)
    out = Path(args.out or REPO / f"benchmarks/results/offpose_frame_{args.tag}.json")
    from image2lego.lego.fileio import atomic_path

    with atomic_path(out) as tmp:
        Path(tmp).write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

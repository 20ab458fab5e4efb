"""Floating pieces in the model's predictions, and what ``lego.voxels.drop_fragments`` does.

Bricks cannot join pieces that do not touch: a prediction in two pieces makes a LEGO model
that cannot be built. For the set-pose view of every validation row (the views of
``training.data render``), this predicts the 32³ grid with the shipped weights and reports the
share of predictions in more than one 6-connected piece and the 32³ IoU, before and after
dropping the pieces smaller than a fraction of the cells (the largest piece always stays).
The pipeline drops only specks (pieces under 1 %) for photos (``PipelineOptions.drop_fragments``)
and joins the larger floating pieces (``lego.join``).

Run: ``python benchmarks/bench_fragments.py [--weights weights/] [--cache DIR]``; about a
minute; writes ``benchmarks/results/bench_fragments.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from image2lego.lego.voxels import drop_fragments

REPO = Path(__file__).resolve().parents[1]
FRACTIONS = (0.0, 0.02, 0.05, 0.1, 0.2, 1.0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="weights folder (default: shipped weights/)")
    ap.add_argument("--cache", default=None, help="voxel/view cache (default $IMAGE2LEGO_CACHE)")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/bench_fragments.json"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from image2lego.core.inference import Predictor
    from image2lego.training.data import load_voxels
    from image2lego.training.train import load_set_pose_views

    allv = load_voxels(cache=args.cache)
    vrows, vimgs = load_set_pose_views(args.cache, None)
    pos = np.full(len(allv), -1)
    pos[vrows] = np.arange(len(vrows))
    val = np.flatnonzero((allv.split == "val") & (pos >= 0))
    chairs = allv.label[val] == "chair"
    predictor = Predictor.load(args.weights)

    iou = {f: np.zeros(len(val)) for f in FRACTIONS}
    pieces = {f: np.zeros(len(val), int) for f in FRACTIONS}
    outside = []  # cells outside the largest piece, per multi-piece prediction
    for j, i in enumerate(val):
        pred = predictor.predict(vimgs[pos[i]], resolutions=(32,))[32]
        target = allv.voxels[i].astype(bool)
        for f in FRACTIONS:
            g = drop_fragments(pred, f)[0] if pred.any() else pred
            iou[f][j] = (g & target).sum() / max((g | target).sum(), 1)
            pieces[f][j] = ndimage.label(g)[1]
        if pieces[0.0][j] > 1:
            outside.append(drop_fragments(pred, 1.0)[1])

    rows = []
    print(f"{len(val)} validation rows ({int(chairs.sum())} chairs), set-pose view, 32³")
    print(f"{'drop pieces <':>14s}{'multi-piece chairs':>20s}{'all':>8s}"
          f"{'IoU chairs':>12s}{'all':>8s}")  # fmt: skip
    for f in FRACTIONS:
        multi = pieces[f] > 1
        row = {
            "min_fraction": f,
            "multi_piece_chairs": float(multi[chairs].mean()),
            "multi_piece_all": float(multi.mean()),
            "iou32_chairs": float(iou[f][chairs].mean()),
            "iou32_all": float(iou[f].mean()),
        }
        rows.append(row)
        print(f"{f:>13.0%} {row['multi_piece_chairs']:>19.1%}{row['multi_piece_all']:>8.1%}"
              f"{row['iou32_chairs']:>12.4f}{row['iou32_all']:>8.4f}")  # fmt: skip
    res = {
        "weights": str(args.weights or "weights/"),
        "n_val_rows": int(len(val)),
        "n_val_chairs": int(chairs.sum()),
        "cells_outside_largest_piece": {
            "median": float(np.median(outside)) if outside else 0.0,
            "max": int(max(outside)) if outside else 0,
        },
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(res, indent=2) + "\n")
    tmp.replace(out)
    print(f"cells outside the largest piece (multi-piece predictions): "
          f"median {res['cells_outside_largest_piece']['median']:.0f}, "
          f"max {res['cells_outside_largest_piece']['max']}")  # fmt: skip
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

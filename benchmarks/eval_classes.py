"""Issue #16's benchmark: every class, held-out whole models, clean renders and photo-like ones.

    .venv/bin/python benchmarks/eval_classes.py --cache ~/.cache/image2lego/learn13 \
        [--weights weights/] [--tag v6] [--offpose 10]

The cache is one built with the 13+ classes and rendered with photo-like views::

    python -m image2lego.training.data build --cache DIR --sets chairs monitors beds \
        shapenet modelnet10 airplanes40 --max-train-models 400 --max-val-models 100 \
        --train-rotations 1 4 7 10
    python -m image2lego.training.data render --cache DIR --views 2 --style photo

Validation rows are whole models carved from the training files (``training.data``
``assign_split``: 10 % of each source's class, seeded; the chair rows are the model card's 89
ModelNet40 chairs x 12 rotations), capped at 100 models per class. Measured, per (source,
class) group, with 95 % bootstrap intervals that resample whole models:

* ``autoencoder``: voxels -> encoder -> decoder (4³ ... 32³);
* ``image``: the set-pose render (view 0) -> image encoder -> decoder;
* ``photo`` (the real-photo proxy): view 1, a photo-like render (elevation 0-50°, azimuth
  +-30° of the set pose, focal length, light, albedo, textured background of any grey, mask
  eroded/dilated like GrabCut's) through the same network;
* ``pieces``: share of 32³ image predictions that are one 6-connected piece: raw
  (``one_piece_share``, the decoder's threshold alone) and as the runtime returns photos
  (``one_piece_share_runtime``: ``core.pieces.connect_pieces``), with the 32³ IoU of both;
* ``offpose``: for ``--offpose`` models per ShapeNet class, IoU at camera azimuth set-pose
  +0/±30/±60/180° (elevation 20°) and elevation 10°/40° (azimuth of the set pose);
* predict time: median ``Predictor.predict`` of one preprocessed image (32³).
* ``image_shapenet_frame`` / ``photo_shapenet_frame`` (ShapeNet rows): the 32³ prediction in
  ShapeNet's own convention (``training.data.to_shapenet_frame``: scaled 32/24, box centred)
  against the original ShapeNetVox32 voxels, the figure comparable with the published ones;
  ``ceiling_shapenet_frame``: the same conversion of our ground truth (a perfect prediction).

``--max-models N`` caps each group at N whole models (``--cap-chairs``: the chair row too, for
a paired comparison of two weights on this CPU); ``--no-ae`` skips the autoencoder rows.

Published ShapeNet figures on the same voxels (their test split, ShapeNet's own textured
renders; ours are our renders of the voxels, on our validation split): 3D-R2N2 0.560,
Pix2Vox-A 0.661, Pix2Vox++/A 0.670 (mean IoU at 32³ over the 13 classes).
Writes ``benchmarks/results/eval_classes_<tag>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from eval_model import PAPER, bootstrap_ci  # noqa: E402

PUBLISHED_SHAPENET = {"3D-R2N2": 0.560, "Pix2Vox-A": 0.661, "Pix2Vox++/A": 0.670}
# The paper's second Table 1 row (ModelNet40 airplanes) is not quoted in this repository and
# could not be checked here: it is left out rather than guessed; only the 0.45 target applies.
PAPER_AIRPLANE: dict | None = None
TARGETS = {
    "shapenet_mean_image_32": 0.62,
    "table1_image_32": 0.45,
    "offpose_within": 0.05,
    "one_piece_share": 0.95,
    "predict_ms": 100.0,
}
RES = (4, 8, 16, 32)
OFFPOSE = {
    "az+0": (0.0, None),
    "az+30": (30.0, None),
    "az-30": (-30.0, None),
    "az+60": (60.0, None),
    "az-60": (-60.0, None),
    "az180": (180.0, None),
    "el10": (0.0, 10.0),
    "el40": (0.0, 40.0),
}


def one_piece(grids: np.ndarray) -> np.ndarray:
    """Per grid: True when its occupied cells form one 6-connected piece (empty: False)."""
    from scipy import ndimage

    return np.array([ndimage.label(g)[1] == 1 for g in grids], dtype=bool)


def group_table(ious: dict[str, dict[int, np.ndarray]], groups: np.ndarray, models: np.ndarray):
    """``{group: {kind: {res: [mean, lo, hi]}, "models": n, "rows": n}}``."""
    out = {}
    for g in sorted(set(groups.tolist())):
        m = groups == g
        row: dict = {"rows": int(m.sum()), "models": len(set(models[m].tolist()))}
        for kind, per_res in ious.items():
            if np.isnan(per_res[next(iter(per_res))][m]).any():
                continue
            row[kind] = {}
            for r, v in per_res.items():
                lo, hi = bootstrap_ci(v[m], models[m], n=1000)
                row[kind][str(r)] = [round(float(v[m].mean()), 4), round(lo, 4), round(hi, 4)]
        out[g] = row
    return out


def _write(out: Path, res: dict) -> None:
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(res, indent=1) + "\n")
    tmp.replace(out)


def grid_iou(a: np.ndarray, b: np.ndarray) -> float:
    u = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / u) if u else 1.0


@torch.no_grad()
def score(decoder, z, vox: np.ndarray, thr: dict, batch: int = 64, runtime: dict | None = None):
    """One decoder pass: per-row IoU at every resolution and the 32³ predictions (bool).
    ``runtime`` (a dict) receives the 32³ grids as the runtime returns them for photos (floating
    pieces joined or dropped, ``core.pieces.connect_pieces``) under "grids" and their IoU."""
    from image2lego.core.model import PRUNED_LOGIT, iou, octree_targets
    from image2lego.core.pieces import connect_pieces

    decoder.eval()
    per: dict[int, list] = {r: [] for r in RES}
    pred = []
    for i in range(0, len(z), batch):
        lg = decoder(z[i : i + batch], mode="pred", thresholds=thr)
        tg = octree_targets(torch.from_numpy(vox[i : i + batch]), RES)
        for r in RES:
            p = lg[r] > thr.get(r, 0.0)
            per[r].append(iou(p, tg[r]).numpy())
        pred.append((lg[32] > thr.get(32, 0.0))[:, 0].numpy())
        if runtime is not None:
            t32 = thr.get(32, 0.0)
            runtime.setdefault("grids", []).extend(
                connect_pieces(x, t32, pruned=PRUNED_LOGIT) for x in lg[32][:, 0].numpy()
            )
    if runtime is not None:
        runtime["grids"] = np.stack(runtime["grids"])
        runtime["iou32"] = np.array([grid_iou(a, b) for a, b in zip(runtime["grids"], vox)])
    return {r: np.concatenate(v) for r, v in per.items()}, np.concatenate(pred)


def shapenet_native_grids(ids: np.ndarray, data=None) -> np.ndarray:
    """The original ShapeNetVox32 grids of these model ids, our axes, ShapeNet's size and
    placement (``training.data.shapenet_native``)."""
    from image2lego.core.paths import data_dir
    from image2lego.training.data import SHAPENET_FILE, shapenet_native, unpack

    with np.load(data_dir(data) / SHAPENET_FILE) as d:
        where = {str(k): i for i, k in enumerate(d["ids"].astype(str))}
        n = int(d["shape"][-1])
        rows = [where[str(i)] for i in ids]
        order = np.argsort(rows)
        packed = d["voxels"][np.array(rows)[order]]
    out = np.empty((len(ids), 32, 32, 32), dtype=bool)
    out[order] = [shapenet_native(unpack(p, n)) for p in packed]
    return out


def cap_groups(allv, rows: np.ndarray, n: int, keep=()) -> np.ndarray:
    """At most ``n`` whole models per (source/label) group among ``rows`` (seeded)."""
    rng = np.random.default_rng(0)
    grp = np.array([f"{s}/{lab}" for s, lab in zip(allv.source[rows], allv.label[rows])])
    out = []
    for g in sorted(set(grp.tolist())):
        r = rows[grp == g]
        ids = np.unique(allv.model_id[r])
        if g in keep or len(ids) <= n:
            out.append(r)
            continue
        pick = ids[np.sort(rng.choice(len(ids), n, replace=False))]
        out.append(r[np.isin(allv.model_id[r], pick)])
    return np.sort(np.concatenate(out))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--weights", default=None, help="weights folder (default: shipped weights/)")
    ap.add_argument("--cache", required=True, help="cache folder with voxels32 + views128")
    ap.add_argument("--tag", default="shipped")
    ap.add_argument(
        "--out", default=None, help="default benchmarks/results/eval_classes_<tag>.json"
    )
    ap.add_argument("--offpose", type=int, default=10, help="models per ShapeNet class (0: skip)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default=None, help="shared data folder (ShapeNet's own voxels)")
    ap.add_argument("--max-models", type=int, default=0,
                    help="at most N validation models per group (0: all; the Table 1 chair "
                    "row always keeps its 89 x 12 rows)")  # fmt: skip
    ap.add_argument(
        "--no-ae",
        action="store_true",
        help="skip the autoencoder rows (same autoencoder as an earlier run)",
    )
    ap.add_argument(
        "--cap-chairs",
        action="store_true",
        help="--max-models caps the chair row too (a paired comparison, not Table 1)",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from image2lego.core.weights import load_weights
    from image2lego.training.data import load_voxels, to_shapenet_frame
    from image2lego.training.train import encode_images, encode_voxels, load_views

    t0 = time.time()
    w = load_weights(args.weights)
    ae, img = w.autoencoder, w.image_encoder
    thr, ithr = w.thresholds, w.image_thresholds
    allv = load_voxels(cache=args.cache)
    views = load_views(args.cache)
    if len(views) != len(allv):
        raise SystemExit(f"views128.npz has {len(views)} rows, the voxel cache {len(allv)}")
    val = np.flatnonzero(allv.split == "val")
    if args.max_models:
        keep = () if args.cap_chairs else ("modelnet40/chair",)
        val = cap_groups(allv, val, args.max_models, keep=keep)
    vox = allv.voxels[val]
    groups = np.array([f"{s}/{lab}" for s, lab in zip(allv.source[val], allv.label[val])])
    models = np.array([f"{g}/{m}" for g, m in zip(groups, allv.model_id[val])])
    print(f"{len(val)} validation rows, {len(set(models.tolist()))} models, "
          f"{len(set(groups.tolist()))} groups", flush=True)  # fmt: skip

    ious: dict[str, dict[int, np.ndarray]] = {}
    preds: dict[str, np.ndarray] = {}
    if not args.no_ae:
        ious["autoencoder"], _ = score(ae.decoder, encode_voxels(ae.encoder, vox), vox, thr)
    z_img = encode_images(img, views[val, 0])
    rt: dict = {}
    ious["image"], preds["image"] = score(ae.decoder, z_img, vox, ithr, runtime=rt)
    if views.shape[1] > 1:
        z_ph = encode_images(img, views[val, 1])
        ious["photo"], preds["photo"] = score(ae.decoder, z_ph, vox, ithr)
    pieces = one_piece(preds["image"])
    pieces_rt = one_piece(rt["grids"])
    # ShapeNet in ShapeNet's own convention (longest side 32, box centred): predictions of our
    # 24-cell frame converted by the fixed factor 32/24, against the original voxels
    sn_rows = np.flatnonzero(allv.source[val] == "shapenet")
    if len(sn_rows):
        native = shapenet_native_grids(allv.model_id[val][sn_rows], args.data)
        for kind in list(preds):
            v = np.full(len(val), np.nan)
            v[sn_rows] = [grid_iou(to_shapenet_frame(g), t)
                          for g, t in zip(preds[kind][sn_rows], native, strict=True)]  # fmt: skip
            ious[f"{kind}_shapenet_frame"] = {32: v}
        v = np.full(len(val), np.nan)
        v[sn_rows] = [grid_iou(to_shapenet_frame(g), t)
                      for g, t in zip(vox[sn_rows], native, strict=True)]  # fmt: skip
        ious["ceiling_shapenet_frame"] = {32: v}
    print(f"evaluated in {time.time() - t0:.0f}s", flush=True)

    table = group_table(ious, groups, models)
    for g in table:
        m = groups == g
        table[g]["one_piece"] = round(float(pieces[m].mean()), 4)
    sn = [g for g in table if g.startswith("shapenet/")]
    sn_mean = {
        kind: round(float(np.mean([table[g][kind]["32"][0] for g in sn])), 4)
        for kind in ious
        if sn and all(kind in table[g] for g in sn)
    }
    res: dict = {
        "weights": str(w.files.get("autoencoder", "")),
        "weights_training": str(w.meta.get("training", {}).get("version", ""))[:200],
        "cache": str(args.cache),
        "n_val_rows": int(len(val)),
        "groups": table,
        "shapenet_mean_32": sn_mean,
        "published_shapenet_mean_32": PUBLISHED_SHAPENET,
        "paper_table1": {"chair": PAPER, "airplane": PAPER_AIRPLANE},
        "one_piece_share": round(float(pieces.mean()), 4),
        "one_piece_share_runtime": round(float(pieces_rt.mean()), 4),
        "image_32_runtime_mean": round(float(rt["iou32"].mean()), 4),
        "image_32_raw_mean": round(float(ious["image"][32].mean()), 4),
        "targets": TARGETS,
    }

    if args.offpose:
        res["offpose"] = offpose(args, allv, val, w, groups)

    out = Path(args.out or REPO / f"benchmarks/results/eval_classes_{args.tag}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    _write(out, res)  # the long part is done: keep it even if timing fails

    from image2lego.core.inference import Predictor

    p = Predictor(w, threads=args.threads)
    x = views[val[0], 0]
    p.predict(x)
    times = []
    for _ in range(15):
        t = time.perf_counter()
        p.predict(x)
        times.append(time.perf_counter() - t)
    res["predict_ms_median"] = round(1000 * float(np.median(times)), 1)
    res["minutes"] = round((time.time() - t0) / 60, 2)

    _write(out, res)
    print_summary(res)
    print(f"wrote {out}")
    return 0


def offpose(args, allv, val, w, groups) -> dict:
    """IoU at 32³ of the image path for camera poses away from the set pose."""
    from image2lego.core.camera import SET_POSE
    from image2lego.training.render import Renderer, voxel_surface
    from image2lego.training.train import encode_images, ious_from_latents

    rng = np.random.default_rng(0)
    pick = []
    for g in sorted(set(groups.tolist())):
        if not g.startswith("shapenet/"):
            continue
        rows = np.flatnonzero(groups == g)
        pick += sorted(rng.choice(rows, min(args.offpose, len(rows)), replace=False).tolist())
    rows = val[np.array(pick)]
    vox = allv.voxels[rows]
    out = {"models": len(rows)}
    with Renderer() as r:
        surf = [voxel_surface(g) for g in vox]
        for name, (daz, el) in OFFPOSE.items():
            view = replace(
                SET_POSE,
                azimuth=SET_POSE.azimuth + daz,
                elevation=SET_POSE.elevation if el is None else el,
            )
            imgs = np.stack([r.frame(*r.raw(v, f, view), view) for v, f in surf])
            z = encode_images(w.image_encoder, imgs)
            iou = ious_from_latents(w.autoencoder.decoder, z, vox, w.image_thresholds)[32]
            out[name] = round(float(iou.mean()), 4)
    return out


def print_summary(res: dict) -> None:
    kinds = [
        k
        for k in (
            "autoencoder",
            "image",
            "photo",
            "image_shapenet_frame",
            "photo_shapenet_frame",
            "ceiling_shapenet_frame",
        )
        if any(k in g for g in res["groups"].values())
    ]
    print("\n| group | models | " + " | ".join(f"{k} 32³" for k in kinds) + " | one piece |")
    print("|---|---|" + "---|" * len(kinds) + "---|")
    for g, row in res["groups"].items():
        cells = [f"{row[k]['32'][0]:.3f}" if k in row else "-" for k in kinds]
        print(f"| {g} | {row['models']} | " + " | ".join(cells) + f" | {row['one_piece']:.2f} |")
    print(f"\nShapeNet 13-class mean 32³: {res['shapenet_mean_32']} "
          f"(published: {res['published_shapenet_mean_32']})")  # fmt: skip
    for g in ("modelnet40/chair", "modelnet40/airplane"):
        if g in res["groups"]:
            row = res["groups"][g]
            for k in (k for k in kinds if "shapenet" not in k and k in row):
                print(f"{g} {k}: " + " / ".join(f"{row[k][str(r)][0]:.3f}" for r in RES))
    print(
        f"one piece: {res['one_piece_share']:.3f} raw, {res['one_piece_share_runtime']:.3f} "
        f"as the runtime returns photos (32³ IoU {res['image_32_raw_mean']:.4f} raw, "
        f"{res['image_32_runtime_mean']:.4f} runtime); predict {res.get('predict_ms_median')} ms"
    )
    if "offpose" in res:
        poses = ", ".join(f"{k} {v}" for k, v in res["offpose"].items() if k != "models")
        print(f"off-pose (32³, {res['offpose']['models']} ShapeNet models): {poses}")


if __name__ == "__main__":
    raise SystemExit(main())

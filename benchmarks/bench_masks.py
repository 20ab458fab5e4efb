"""Issue #16: background removal on cluttered photos, and the real-photo proxy.

    .venv/bin/python benchmarks/bench_masks.py --cache ~/.cache/image2lego/learn16 \
        [--weights DIR] [--tag v6] [--per-class 3]

Scenes: an object rendered by the project's renderer (``training.render``, pyrender), tinted
with a random albedo colour, with a soft contact shadow, composited at a random place and
size onto a random crop of a real photograph (the photographs that ship inside
scikit-image: coffee, chelsea, rocket, astronaut, hubble, retina, immunohistochemistry, cat,
colorwheel: cups, furniture, fur, sky, stars: clutter), 320x320. Objects: held-out
validation models of every ShapeNet class and the ModelNet40 chair/airplane rows (their
voxel surfaces) and the ``../shared/data/textured_small`` meshes (their geometry, tinted:
pyrender drops their textures here).

1. **Mask IoU** against the render's true mask, per method:
   * ``grabcut``: what ``core.preprocess`` does without help (GrabCut from the border, and
     its retry from a centred rectangle when the first mask is empty);
   * ``grabcut+rect``: GrabCut from a user's crop rectangle (the true box + 8 %,
     ``--rect`` / Blender's crop);
   * ``mediapipe-selfie``: MediaPipe's selfie segmenter, the one segmentation network whose
     weights ship inside a PyPI wheel in this environment (trained on people; skipped with a
     message when mediapipe cannot be imported);
2. **Real-photo proxy** (validation models only, their voxels are the truth): the composite
   goes through ``preprocess_image`` (GrabCut) and ``Predictor.predict``; 32³ IoU in the
   canonical frame, beside the same render on the training renderer's clean background
   (``clean``) and with the true mask given (``--mask``: ``given mask``).

Writes ``benchmarks/results/bench_masks_<tag>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SIZE = 320
BACKGROUNDS = ("coffee", "chelsea", "rocket", "astronaut", "hubble_deep_field", "retina",
               "immunohistochemistry", "cat", "colorwheel")  # fmt: skip
TEXTURED = (
    "kaolin/armchair.obj", "kaolin/fox.obj", "kaolin/avocado.obj", "kaolin/pizza.obj",
    "trimesh/Duck.glb", "trimesh/CesiumMilkTruck.glb", "trimesh/chair_model.obj",
    "trimesh/fuze.obj", "pyrender/wood.obj",
    "ycb_eleramp/YcbBanana/textured_simple_reoriented.obj",
    "ycb_eleramp/YcbScissors/textured_simple_reoriented.obj",
)  # fmt: skip


def backgrounds() -> list[np.ndarray]:
    import skimage.data as skd

    out = []
    for name in BACKGROUNDS:
        im = np.asarray(getattr(skd, name)())
        if im.ndim == 2:
            im = np.stack([im] * 3, -1)
        out.append(im[..., :3].astype(np.uint8))
    return out


def composite(gray: np.ndarray, mask: np.ndarray, bgs, rng) -> tuple[np.ndarray, np.ndarray]:
    """A tinted render on a cluttered photo crop -> (rgb uint8 (SIZE, SIZE, 3), true mask)."""
    from scipy import ndimage

    bg = bgs[rng.integers(len(bgs))]
    h, w = bg.shape[:2]
    side = int(rng.integers(min(h, w) // 3, min(h, w) + 1))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    canvas = np.asarray(
        Image.fromarray(bg[y : y + side, x : x + side]).resize((SIZE, SIZE), Image.BILINEAR),
        dtype=np.float32,
    )
    ys, xs = np.nonzero(mask)
    crop = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    g, m = gray[crop], mask[crop]
    scale = rng.uniform(0.4, 0.75) * SIZE / max(g.shape)
    nh, nw = max(8, round(g.shape[0] * scale)), max(8, round(g.shape[1] * scale))
    g = np.asarray(Image.fromarray(g.astype(np.float32)).resize((nw, nh), Image.BILINEAR))
    a = np.asarray(Image.fromarray(m.astype(np.float32)).resize((nw, nh), Image.BILINEAR))
    oy, ox = int(rng.integers(0, SIZE - nh + 1)), int(rng.integers(0, SIZE - nw + 1))
    alpha = np.zeros((SIZE, SIZE), np.float32)
    alpha[oy : oy + nh, ox : ox + nw] = a
    obj = np.zeros((SIZE, SIZE), np.float32)
    obj[oy : oy + nh, ox : ox + nw] = g
    # soft contact shadow: the silhouette squashed onto the floor line, blurred, darkened
    shadow = ndimage.gaussian_filter(np.roll(alpha, max(2, nh // 20), axis=0), 6) * 0.45
    canvas *= 1 - shadow[..., None]
    tint = rng.uniform(0.25, 1.0, 3)
    rgb = obj[..., None] * tint[None, None] * rng.uniform(0.8, 1.3)
    out = canvas * (1 - alpha[..., None]) + rgb * alpha[..., None]
    return np.clip(out, 0, 255).astype(np.uint8), alpha > 0.5


def iou(a: np.ndarray, b: np.ndarray) -> float:
    u = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / u) if u else 1.0


def masks(rgb: np.ndarray, truth: np.ndarray, selfie) -> dict[str, np.ndarray]:
    from image2lego.core.preprocess import MIN_MASK_FRACTION, ImageError, grabcut_mask

    out = {}
    h, w = truth.shape
    try:
        m = grabcut_mask(rgb)
        if m.sum() < MIN_MASK_FRACTION * h * w:  # core.preprocess's retry
            m = grabcut_mask(rgb, rect=(w // 10, h // 10, w - w // 10, h - h // 10))
    except ImageError:
        m = np.zeros_like(truth)
    out["grabcut"] = m
    ys, xs = np.nonzero(truth)
    py, px = max(2, int(0.08 * (ys.ptp() + 1))), max(2, int(0.08 * (xs.ptp() + 1)))
    rect = (max(0, xs.min() - px), max(0, ys.min() - py), min(w, xs.max() + 1 + px),
            min(h, ys.max() + 1 + py))  # fmt: skip
    try:
        out["grabcut+rect"] = grabcut_mask(rgb, rect=rect)
    except ImageError:
        out["grabcut+rect"] = np.zeros_like(truth)
    if selfie is not None:
        res = selfie.process(rgb)
        out["mediapipe-selfie"] = (
            np.zeros_like(truth) if res.segmentation_mask is None else res.segmentation_mask > 0.5
        )
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cache", required=True, help="voxel cache with the validation rows")
    ap.add_argument(
        "--weights",
        nargs="+",
        default=[None],
        help="weights folders compared on the same scenes (default: shipped)",
    )
    ap.add_argument("--names", nargs="+", default=None, help="a name per weights folder")
    ap.add_argument("--tag", default="shipped")
    ap.add_argument("--per-class", type=int, default=3, help="validation models per class")
    ap.add_argument("--data", default=None, help="shared data folder (textured meshes)")
    ap.add_argument("--no-masks", action="store_true", help="only the real-photo proxy")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from image2lego.core.camera import SET_POSE, voxel_surface
    from image2lego.core.inference import Predictor
    from image2lego.core.paths import data_dir
    from image2lego.core.preprocess import ImageError, preprocess_image
    from image2lego.training.data import load_voxels, voxelize_mesh
    from image2lego.training.render import Renderer

    t0 = time.time()
    rng = np.random.default_rng(args.seed)
    bgs = backgrounds()
    vs = load_voxels(args.cache, split="val")
    grp = np.array([f"{s}/{lab}" for s, lab in zip(vs.source, vs.label, strict=True)])
    pick = []
    for g in sorted(set(grp.tolist())):
        if g.startswith("shapenet/") or g in ("modelnet40/chair", "modelnet40/airplane"):
            rows = np.flatnonzero(grp == g)
            pick += sorted(rng.choice(rows, min(args.per_class, len(rows)), replace=False).tolist())
    selfie = None
    if not args.no_masks:
        try:
            import mediapipe as mp

            selfie = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
        except Exception as e:  # an optional comparison: report, do not fail
            print(f"mediapipe selfie segmentation unavailable: {e}", file=sys.stderr)
    names = args.names or [str(w or "shipped") for w in args.weights]
    if len(names) != len(args.weights):
        raise SystemExit("give one --names entry per --weights folder")
    preds = {n: Predictor.load(w, threads=1) for n, w in zip(names, args.weights, strict=True)}
    mask_iou: dict[str, list[float]] = {}
    kinds = ("clean", "composite+grabcut", "given mask")
    proxy: dict[str, dict[str, list[float]]] = {n: {k: [] for k in kinds} for n in names}
    proxy_groups: list[str] = []
    failures = 0
    with Renderer() as r:
        for i in pick:
            v = replace(SET_POSE, albedo=float(rng.uniform(0.4, 0.9)))
            gray, m = r.raw(*voxel_surface(vs.voxels[i]), v)
            rgb, truth = composite(gray, m, bgs, rng)
            if not args.no_masks:
                for k, mk in masks(rgb, truth, selfie).items():
                    mask_iou.setdefault(k, []).append(iou(mk, truth))
            target = vs.voxels[i]
            ims = {"clean": r.frame(gray, m, v)}
            try:
                ims["composite+grabcut"] = preprocess_image(Image.fromarray(rgb)).image
            except ImageError:
                ims["composite+grabcut"] = None
                failures += 1
            ims["given mask"] = preprocess_image(Image.fromarray(rgb), mask=truth).image
            for n, pr in preds.items():
                for k, im in ims.items():
                    got = np.zeros_like(target) if im is None else pr.predict(im)[32]
                    proxy[n][k].append(iou(got, target))
            proxy_groups.append(grp[i])
        if not args.no_masks:
            root = data_dir(args.data) / "textured_small"
            for rel in TEXTURED:
                p = root / rel
                if not p.is_file():
                    continue
                try:
                    grid = voxelize_mesh(p, 32)
                except Exception as e:  # a broken sample mesh must not stop the benchmark
                    print(f"skipped {rel}: {e}", file=sys.stderr)
                    continue
                for az in (0.0, 180.0):
                    v = replace(SET_POSE, azimuth=SET_POSE.azimuth + az, albedo=0.8)
                    gray, m = r.raw(*voxel_surface(grid), v)
                    rgb, truth = composite(gray, m, bgs, rng)
                    for k, mk in masks(rgb, truth, selfie).items():
                        mask_iou.setdefault(k + " (textured_small)", []).append(iou(mk, truth))

    def stats(v):
        a = np.asarray(v)
        return {"n": len(a), "mean": round(float(a.mean()), 4),
                "median": round(float(np.median(a)), 4),
                "share_below_0.5": round(float((a < 0.5).mean()), 3)}  # fmt: skip

    pg = np.array(proxy_groups)
    res = {
        "weights": dict(zip(names, map(str, args.weights), strict=True)),
        "scenes": len(pick),
        "mask_iou": {k: stats(v) for k, v in mask_iou.items()},
        "proxy_iou32": {n: {k: stats(v) for k, v in pk.items()} for n, pk in proxy.items()},
        "proxy_iou32_per_group": {
            n: {
                g: {k: round(float(np.mean(np.asarray(v)[pg == g])), 4) for k, v in pk.items()}
                for g in sorted(set(proxy_groups))
            }
            for n, pk in proxy.items()
        },
        "proxy_grabcut_no_object": failures,
        "minutes": round((time.time() - t0) / 60, 2),
    }
    out = REPO / f"benchmarks/results/bench_masks_{args.tag}.json"
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(res, indent=1) + "\n")
    tmp.replace(out)
    for k, s in res["mask_iou"].items():
        print(f"mask IoU {k}: mean {s['mean']:.3f} median {s['median']:.3f} (n {s['n']}, "
              f"{s['share_below_0.5']:.0%} below 0.5)")  # fmt: skip
    for n, pk in res["proxy_iou32"].items():
        for k, s in pk.items():
            print(f"proxy 32³ IoU {n} {k}: mean {s['mean']:.3f} median {s['median']:.3f}")
    print(f"wrote {out} in {res['minutes']} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

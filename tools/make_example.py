"""Make the bundled example photo ``examples/chair.png`` with the project's own renderer.

A validation chair (never seen in training) from the canonical-frame dataset, rendered from
the set-pose camera at 512² with an alpha channel (the object cut out, as a photo after
background removal). Needs the dataset cache (``python -m image2lego.training.data build``).

    python tools/make_example.py [--index K] [--out examples/chair.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from image2lego.lego.fileio import atomic_path
from image2lego.training.data import load_voxels
from image2lego.training.render import SET_POSE, Renderer, voxel_surface

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", type=int, default=0, help="which validation chair (0-based)")
    ap.add_argument("--out", type=Path, default=REPO / "examples" / "chair.png")
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args(argv)
    vs = load_voxels(split="val", labels=["chair"])
    rows = np.flatnonzero(vs.rotation == 4)  # the canonical, front-facing rotation
    row = rows[args.index % len(rows)]
    with Renderer(args.size) as r:
        gray, mask = r.raw(*voxel_surface(vs.voxels[row]), SET_POSE, smooth=True)
    # A warm wood tint so the example looks like a photo, not a depth map.
    g = np.clip(gray, 0, 255)[..., None] / 255.0
    rgb = np.clip(255 * g * np.array([1.0, 0.78, 0.55]) + 20, 0, 255).astype(np.uint8)
    rgba = np.dstack([rgb, (mask * 255).astype(np.uint8)])
    with atomic_path(args.out, suffix=".tmp.png", mkdir=True) as tmp:
        Image.fromarray(rgba, "RGBA").save(tmp, optimize=True)
    print(f"{args.out}  (validation chair {vs.model_id[row]}, rotation 4)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

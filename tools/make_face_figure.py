"""The README's face figure (the paper's Figure 2): a face photo, its 2D LEGO mosaic and its
3D LEGO bust, side by side.

    python tools/make_face_figure.py [--photo PATH] [--size 16] [--mosaic 32]

Default photo: scikit-image's ``astronaut()`` (NASA, public domain). Needs the face extra
(mediapipe) and bpy for the bust's render. Writes ``docs/img/face_mosaic_bust.png``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from image2lego import outputs
from image2lego.core import face
from image2lego.core.pipeline import PipelineOptions, run
from image2lego.lego import mosaic

REPO = Path(__file__).resolve().parents[1]
H = 300


def _fit(im: Image.Image) -> Image.Image:
    return im.resize((max(1, round(im.width * H / im.height)), H), Image.Resampling.LANCZOS)


def _trim(im: Image.Image) -> Image.Image:
    a = np.asarray(im.convert("RGB")).astype(int)
    ys, xs = np.nonzero((a < 245).any(axis=2))
    pad = 10
    return im.crop((max(0, xs.min() - pad), max(0, ys.min() - pad), xs.max() + pad, ys.max() + pad))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photo", type=Path, default=None)
    ap.add_argument("--size", type=int, default=16, help="bust: studs across the face")
    ap.add_argument("--mosaic", type=int, default=32, help="mosaic: studs per side")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "face_mosaic_bust.png")
    args = ap.parse_args(argv)
    if args.photo is None:
        from skimage import data

        rgb = data.astronaut()
    else:
        rgb = face.load_rgb(args.photo)
    f, _ = face.pick_face(face.detect_faces(rgb))
    # the head and a margin: a square crop around the face for the photo and the mosaic
    cx, cy = (f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2
    half = 0.8 * max(f.width, f.height)
    box = tuple(int(round(v)) for v in (cx - half, cy - half, cx + half, cy + half))
    crop = Image.fromarray(rgb).crop(box)
    m = mosaic.make_mosaic(np.asarray(crop), mosaic.MosaicOptions(args.mosaic, args.mosaic, k=8))
    pic = Image.fromarray(mosaic.render(m.codes, "tile", 12, 0))
    opt = face.FaceOptions(size=args.size, pipeline=PipelineOptions(repair_max_bricks=4000))
    res = run(face.face_to_lego_steps(rgb, opt))
    with tempfile.TemporaryDirectory() as tmp:
        written = outputs.write_all(res, Path(tmp), formats=(), instructions=False, blend=False)
        rgba = Image.open(written["render"]).convert("RGBA")
        bust = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        bust.alpha_composite(rgba)
        bust = _trim(bust.convert("RGB"))
    panels = [_fit(crop), _fit(pic), _fit(bust)]
    st = m.stats
    labels = [
        "photo",
        f"2D mosaic {args.mosaic}x{args.mosaic}, {st['colors']} colours, dE {st['delta_e']:.1f}",
        f"3D bust, {len(res.model)} bricks, {len(res.grid.codes)} colours",
    ]
    gap, text_h = 12, 22
    W = sum(p.width for p in panels) + gap * (len(panels) - 1)
    fig = Image.new("RGB", (W, H + text_h), "white")
    draw = ImageDraw.Draw(fig)
    x = 0
    for p, label in zip(panels, labels):
        fig.paste(p, (x, 0))
        draw.text((x + 4, H + 4), label, fill=(40, 40, 40))
        x += p.width + gap
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.quantize(128).save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Make the README pictures from a demo run (``bash tools/demo.sh`` → ``out/demo``).

    python tools/make_readme_images.py [--demo out/demo] [--step 20]

Writes ``docs/images/result.png`` (example photo | what the network saw | the LEGO model) and
``docs/images/instruction_page.png`` (one page of the generated booklet).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from image2lego.core import booklet
from image2lego.lego.ldraw import parse_ldr

REPO = Path(__file__).resolve().parents[1]
H = 420


def _white(im: Image.Image) -> Image.Image:
    im = im.convert("RGBA")
    bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
    bg.alpha_composite(im)
    return bg.convert("RGB")


def _fit(im: Image.Image) -> Image.Image:
    return im.resize((int(im.width * H / im.height), H), Image.LANCZOS)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", type=Path, default=REPO / "out" / "demo")
    ap.add_argument("--step", type=int, default=20)
    args = ap.parse_args(argv)
    d, out = args.demo, REPO / "docs" / "images"
    out.mkdir(parents=True, exist_ok=True)
    photo = _white(Image.open(REPO / "examples" / "chair.png"))
    seen = Image.open(d / "input.png").convert("RGB").resize((H, H), Image.NEAREST)
    render = _white(Image.open(d / "render.png"))
    bbox = Image.eval(render.convert("L"), lambda v: 255 - v).getbbox()
    tiles = [_fit(photo), seen, _fit(render.crop(bbox))]
    sheet = Image.new("RGB", (sum(t.width for t in tiles) + 20 * len(tiles), H), "white")
    x = 0
    for t in tiles:
        sheet.paste(t, (x, 0))
        x += t.width + 20
    sheet.save(out / "result.png", optimize=True)

    imgs = d / "instructions_images"
    steps = sorted(imgs.glob("step_*.png"))
    k = min(args.step, len(steps))
    parts: dict = {}
    for b in parse_ldr(d / "model.ldr").bricks:
        if b.step == k - 1:
            parts[(b.part_id, b.color)] = parts.get((b.part_id, b.color), 0) + 1
    thumbs = {key: imgs / "parts" / f"{key[0]}_{key[1]}.png" for key in parts}
    page = booklet.compose_step_page(
        k,
        len(steps),
        steps[k - 1],
        parts,
        thumbs,
        title="Image2LEGO model of chair",
        crop=booklet.common_crop(steps),
    )
    page = page.convert("RGB")
    page.resize((page.width * 2 // 3, page.height * 2 // 3), Image.LANCZOS).save(
        out / "instruction_page.png", optimize=True
    )
    print(out / "result.png", out / "instruction_page.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

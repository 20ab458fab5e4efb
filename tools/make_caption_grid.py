"""The README's grid of 12 captions → LEGO (docs/images/caption_grid.png).

    .venv/bin/python tools/make_caption_grid.py

Each caption goes through ``core.caption.caption_to_lego_steps`` with the default options and
is rendered by the same Workbench render as ``render.png``; under each caption, how it was read
(the class, or the two classes blended and their shares, and the reader). The captions include
words the old word table did not know (truck, fighter jet, rowing boat, throne, gourd) and ones
that show where the approach fails.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CAPTIONS = [
    "a red chair",
    "a small blue sofa",
    "a tan dining table",
    "a yellow floor lamp",
    "a dark red pickup truck",
    "a grey fighter jet",
    "an orange rowing boat",
    "a green park bench",
    "a black throne",
    "a chair in the style of a sofa",
    "a cross between a car and a boat",
    "an armchair in the style of a gourd",
]


def reading(info: dict) -> str:
    """The line under a caption: "read as car", "read as chair 65% + bed 35%" (no arrow:
    the default font has none)."""
    name = info["class"].replace("_", " ")
    if info["blend"] is None:
        out = name
    else:
        w = info["blend_weight"]
        out = f"{name} {1 - w:.0%} + {info['blend'].replace('_', ' ')} {w:.0%}"
    return f"read as {out} ({'embedding' if info['reader'] != 'word table' else 'word table'})"


H = 290  # one cell's height: the picture, the caption, how it was read


def main() -> int:
    from PIL import Image, ImageDraw, ImageFont

    from image2lego import outputs
    from image2lego.core import caption
    from image2lego.core.pipeline import run

    tiles = []
    for text in CAPTIONS:
        result = run(caption.caption_to_lego_steps(text))
        with tempfile.TemporaryDirectory() as tmp:
            outputs.write_all(result, Path(tmp) / "o", formats=[], render=True,
                              instructions=False, blend=False)  # fmt: skip
            im = Image.open(Path(tmp) / "o" / "render.png").convert("RGBA")
            im.load()
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        bg.alpha_composite(im)
        box = bg.convert("RGB").getbbox()
        tile = bg.convert("RGB")
        tile = tile.crop(Image.eval(tile, lambda v: 255 - v).getbbox() or box)
        tile.thumbnail((300, 220))
        cell = Image.new("RGB", (320, H), "white")
        cell.paste(tile, ((320 - tile.width) // 2, 10 + (220 - tile.height) // 2))
        d = ImageDraw.Draw(cell)
        d.text((160, 248), f"“{text}”", font=ImageFont.load_default(size=16), fill=(40, 40, 40),
               anchor="mm")  # fmt: skip
        info = result.model.meta["caption"]
        d.text((160, 270), reading(info), font=ImageFont.load_default(size=13),
               fill=(110, 110, 110), anchor="mm")  # fmt: skip
        tiles.append(cell)
        print(text, reading(info), len(result.model.bricks), "bricks", flush=True)
    grid = Image.new("RGB", (4 * 320, 3 * H), "white")
    for i, t in enumerate(tiles):
        grid.paste(t, ((i % 4) * 320, (i // 4) * H))
    out = REPO / "docs" / "images" / "caption_grid.png"
    grid.save(out, optimize=True)
    print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

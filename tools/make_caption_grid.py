"""The README's grid of 12 captions → LEGO (docs/images/caption_grid.png).

    .venv/bin/python tools/make_caption_grid.py

Each caption goes through ``core.caption.caption_to_lego_steps`` with the default options and
is rendered by the same Workbench render as ``render.png``; the captions include ones that
show where the word-table approach fails.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CAPTIONS = [
    "a red chair",
    "a small blue sofa",
    "a tan table",
    "a white bed",
    "a yellow lamp",
    "a black office chair",
    "a dark red car",
    "a grey jet airplane",
    "a blue boat",
    "a green bench",
    "a chair in the style of a sofa",
    "a cross between a car and a boat",
]


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
        cell = Image.new("RGB", (320, 270), "white")
        cell.paste(tile, ((320 - tile.width) // 2, 10 + (220 - tile.height) // 2))
        d = ImageDraw.Draw(cell)
        d.text((160, 250), f"“{text}”", font=ImageFont.load_default(size=16), fill=(40, 40, 40),
               anchor="mm")  # fmt: skip
        tiles.append(cell)
        print(text, len(result.model.bricks), "bricks", flush=True)
    grid = Image.new("RGB", (4 * 320, 3 * 270), "white")
    for i, t in enumerate(tiles):
        grid.paste(t, ((i % 4) * 320, (i // 4) * 270))
    out = REPO / "docs" / "images" / "caption_grid.png"
    grid.save(out, optimize=True)
    print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m image2lego mosaic PHOTO``: a photo → a 2D LEGO mosaic (see :mod:`.lego.mosaic`).

Writes ``mosaic.ldr`` / ``mosaic.mpd`` (LDraw, one step per base layer and per 16×16 section),
``parts.csv``, ``bricklink.xml``, ``rebrickable.csv``, ``mosaic.png`` (a top view of the
result), ``target.png`` (the photo at one pixel per stud), ``instructions.html`` /
``instructions.pdf`` (one page per section, with its parts) and ``report.json``. Needs no
Blender: the pictures are drawn with numpy.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .lego.summary import Report


def build_parser() -> argparse.ArgumentParser:
    from .lego.mosaic import ELEMENTS, FITS, MAX_STUDS, MIN_STUDS, STEP_STUDS

    p = argparse.ArgumentParser(
        prog="python -m image2lego mosaic",
        description="Turn a photo into a 2D LEGO mosaic of 1x1 tiles or plates on a plate base: "
        "LDraw, parts lists, a picture of the result and instructions in 16x16 sections.",
    )
    p.add_argument("input", type=Path, help="photo (.png/.jpg/…)")
    p.add_argument("-o", "--out", type=Path, default=Path("out/mosaic"), help="output folder")
    sizes = f"{MIN_STUDS}..{MAX_STUDS}, a multiple of {STEP_STUDS}"
    p.add_argument("--width", type=int, default=48, help=f"studs across ({sizes}; default 48)")
    p.add_argument("--height", type=int, default=48, help=f"studs down ({sizes}; default 48)")
    p.add_argument("-k", "--colors", type=int, default=8, help="number of colours (default 8)")
    p.add_argument("--element", choices=sorted(ELEMENTS), default="tile")
    p.add_argument("--dither", action="store_true", help="Floyd–Steinberg error diffusion")
    p.add_argument(
        "--standing",
        action="store_true",
        help="an upright wall of bricks on a foot, the picture on its front (one brick course "
        "per row; --element is ignored) instead of tiles lying on a plate base",
    )
    p.add_argument("--fit", choices=FITS, default="crop", help="crop to the aspect or stretch")
    p.add_argument("--base-color", type=int, default=0, help="LDraw colour of the base (0 black)")
    p.add_argument("--palette", type=str, default=None, help="comma-separated LDraw codes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-instructions", action="store_true", help="skip the booklet")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    p.add_argument("-v", "--verbose", action="store_true", help="debug messages too")
    return p


def main(argv: list[str]) -> int:
    from .lego.errors import Image2LegoError, logging_to_stdout

    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    with logging_to_stdout(level) as log:
        try:
            return _run(args, log)
        except (Image2LegoError, ValueError, TypeError, OSError, KeyError) as exc:
            print(f"image2lego mosaic: error: {exc}", file=sys.stderr)
            return 2


def _png(array) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def load_rgb(path: Path):
    """A photo as ``(H, W, 3)`` uint8, upright (EXIF), alpha composited over white."""
    import numpy as np
    from PIL import Image, ImageOps

    from .core.preprocess import _open

    img = ImageOps.exif_transpose(_open(path))
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, rgba)
    return np.asarray(img.convert("RGB"))


def _run(args: argparse.Namespace, log: logging.Logger) -> int:
    from .cli_output import summary_lines
    from .lego import mosaic
    from .lego.fileio import check_output_dir
    from .lego.staging import staged_output
    from .lego.summary import model_summary

    palette = None
    if args.palette:
        try:
            palette = [int(c) for c in args.palette.split(",") if c.strip()]
        except ValueError:
            raise mosaic.MosaicError(
                f"--palette must be LDraw codes like 15,71,0, not {args.palette!r}"
            ) from None
    options = mosaic.MosaicOptions(
        width=args.width,
        height=args.height,
        k=args.colors,
        element=args.element,
        dither=args.dither,
        fit=args.fit,
        base_color=args.base_color,
        palette=palette,
        seed=args.seed,
        orientation="standing" if args.standing else "lying",
    )
    options.validate()  # before touching the output folder
    times: dict[str, float] = {}
    t = time.perf_counter()
    rgb = load_rgb(args.input)
    times["load"] = time.perf_counter() - t
    t = time.perf_counter()
    result = mosaic.make_mosaic(rgb, options)
    times["mosaic"] = time.perf_counter() - t
    out = check_output_dir(args.out)
    # all or nothing: a failed run (a full disk, Ctrl-C) leaves the earlier result as it was
    with staged_output(out, products=PRODUCTS) as stage:
        staged = _write_products(result, stage, options, args, times)
    written = {kind: out / Path(path).relative_to(stage) for kind, path in staged.items()}
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    log.debug(json.dumps(report, indent=2))
    for kind, path in written.items():
        log.debug(f"  {kind:>17}: {path}")
    summary: Report = {**model_summary(result.model), "seconds": round(sum(times.values()), 2)}
    for line in summary_lines(summary, written, out):
        log.info(line)
    return 0


#: every file and folder a mosaic run owns in its output folder (see lego.staging)
PRODUCTS = (
    "mosaic.ldr",
    "mosaic.mpd",
    "parts.csv",
    "bricklink.xml",
    "rebrickable.csv",
    "mosaic.png",
    "target.png",
    "instructions.html",
    "instructions.pdf",
    "instructions_images",
    "report.json",
)


def _write_products(result, out: Path, options, args, times: dict[str, float]) -> dict[str, Path]:
    """Every product of a mosaic into ``out`` (the staging folder); returns ``{kind: path}``."""
    from .lego import ldraw, partslist
    from .lego.fileio import atomic_write_bytes, atomic_write_text

    t = time.perf_counter()
    model = result.model
    title = f"Image2LEGO mosaic of {args.input.stem}"
    written = {
        "ldraw": ldraw.write_ldr(model, out / "mosaic.ldr", title=title),
        "ldraw_mpd": ldraw.write_mpd(model, out / "mosaic.mpd", title=title),
    }
    for fmt, name in (("csv", "parts.csv"), ("bricklink", "bricklink.xml")):
        written[f"parts_{fmt}"] = partslist.write_parts(model, out / name, fmt=fmt)
    written["parts_rebrickable"] = partslist.write_parts(
        model, out / "rebrickable.csv", "rebrickable"
    )
    picture = front_picture(result, 16)
    written["picture"] = atomic_write_bytes(out / "mosaic.png", _png(picture))
    target = (result.target * 255).round().astype("uint8")
    written["target"] = atomic_write_bytes(out / "target.png", _png(target))
    times["files"] = time.perf_counter() - t
    if not args.no_instructions:
        t = time.perf_counter()
        write = write_standing_instructions if args.standing else write_instructions
        written.update(write(result, out, title))
        times["instructions"] = time.perf_counter() - t
    report = dict(result.stats)
    report["seconds"] = {k: round(v, 3) for k, v in times.items()}
    report["options"] = {
        k: getattr(options, k)
        for k in (
            "width",
            "height",
            "k",
            "element",
            "dither",
            "fit",
            "base_color",
            "seed",
            "orientation",
        )  # fmt: skip
    }
    written["report"] = atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    return written


def write_instructions(result, out: Path, title: str) -> dict[str, Path]:
    """The booklet: base layers, then one page per 16×16 section (outlined in red)."""
    from .core import booklet
    from .lego import mosaic
    from .lego.fileio import atomic_write_bytes

    model, codes, opt = result.model, result.codes, result.options
    h, w = codes.shape
    img_dir = out / "instructions_images"
    img_dir.mkdir(exist_ok=True)
    per_step: dict[int, dict] = {}
    for b in model.bricks:
        d = per_step.setdefault(b.step, {})
        d[(b.part_id, b.color)] = d.get((b.part_id, b.color), 0) + 1
    cell = max(6, 768 // max(h, w))
    base_img = mosaic.render(codes, opt.element, cell, opt.base_color, upto=0)
    pics = [base_img, base_img]
    for i, box in enumerate(mosaic.section_boxes(h, w)):
        upto = (i + 1) * mosaic.SECTION * mosaic.SECTION
        pics.append(mosaic.render(codes, opt.element, cell, opt.base_color, upto, box))
    images = []
    for i, pic in enumerate(pics):
        images.append(atomic_write_bytes(img_dir / f"step_{i + 1:03d}.png", _png(pic)))
    full = mosaic.render(codes, opt.element, cell, opt.base_color)
    cover = atomic_write_bytes(img_dir / "cover.png", _png(full))
    html, pdf = booklet.build_booklet(
        out,
        title=title,
        cover=cover,
        step_images=images,
        step_parts=[per_step[s] for s in range(len(images))],
        n_bricks=len(model),
    )
    return {"instructions_html": html, "instructions_pdf": pdf}


def front_picture(result, cell: int, codes=None):
    """The mosaic as seen: from above when lying, from the front when standing (each row a
    brick course, 1.2 studs tall)."""
    import numpy as np
    from PIL import Image

    from .lego import mosaic

    opt = result.options
    codes = result.codes if codes is None else codes
    if opt.orientation != "standing":
        return mosaic.render(codes, opt.element, cell, opt.base_color)
    pic = mosaic.render(codes, "tile", cell, opt.base_color)
    h, w = pic.shape[:2]
    return np.asarray(Image.fromarray(pic).resize((w, round(h * 1.2)), Image.Resampling.NEAREST))


def write_standing_instructions(result, out: Path, title: str) -> dict[str, Path]:
    """The booklet of a standing mosaic: the converter's steps (foot, then course by course),
    each page the front view with the rows built so far."""
    import numpy as np

    from .core import booklet
    from .lego.fileio import atomic_write_bytes

    model, codes = result.model, result.codes
    h, w = codes.shape
    n_steps = model.n_steps()
    per_step: list[dict] = [{} for _ in range(n_steps)]
    row_done = np.full(h, n_steps, dtype=np.int64)  # the step that finishes each picture row
    row_last = np.full(h, -1, dtype=np.int64)
    for b in model.bricks:
        d = per_step[b.step]
        d[(b.part_id, b.color)] = d.get((b.part_id, b.color), 0) + 1
        course = b.z // 3  # paper scale: a brick course is 3 plates; course 0 is the foot
        if course >= 1:
            r = h - course
            if 0 <= r < h:
                row_last[r] = max(row_last[r], b.step)
    row_done = np.where(row_last >= 0, row_last, row_done)
    img_dir = out / "instructions_images"
    img_dir.mkdir(exist_ok=True)
    cell = max(6, 768 // max(h, w))
    blank = np.full_like(codes, int(result.options.base_color))
    images = []
    for s in range(n_steps):
        shown = np.where((row_done <= s)[:, None], codes, blank)
        pic = front_picture(result, cell, shown)
        images.append(atomic_write_bytes(img_dir / f"step_{s + 1:03d}.png", _png(pic)))
    cover = atomic_write_bytes(img_dir / "cover.png", _png(front_picture(result, cell)))
    html, pdf = booklet.build_booklet(
        out,
        title=title,
        cover=cover,
        step_images=images,
        step_parts=per_step,
        n_bricks=len(model),
    )
    return {"instructions_html": html, "instructions_pdf": pdf}

"""``python -m image2lego caption "a small red car"``: a caption → a LEGO model, offline (see
:mod:`.core.caption`: a sentence embedding, all-MiniLM-L6-v2 on numpy, picks the nearest trained
class or a blend of two, words give the colour and size, the seed the variant; the shape comes
from the shipped autoencoder). Without the optional embedding package the word table reads the
caption, and the output says so.

Writes the same products as the main command (LDraw, parts lists, ``voxels.npy``,
``report.json`` with a ``caption`` section saying what was understood and, with Blender's
Python module, ``render.png``, ``instructions/`` and ``model.blend``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .cli import (
    EXIT_OK,
    _folder,
    _Parser,
    add_output_arguments,
    add_shape_arguments,
    guarded,
    parse_formats,
    report,
    write_products,
)
from .cli_output import progress_bar
from .lego.errors import get_logger

log = get_logger()


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m image2lego caption",
        description="Build a LEGO model from a caption such as 'a small red car' (offline: a "
        "sentence embedding picks the nearest trained class, or blends two for 'X in the style "
        "of Y'; a LEGO colour by name, small = 16³ else 32³; the shipped autoencoder decodes "
        "the class's typical shape).",
    )
    p.add_argument("caption", nargs="+", help="what to build, e.g. a dark red sofa")
    p.add_argument("-o", "--out", type=_folder, default=Path("out/caption"), help="output folder")
    p.add_argument("--seed", type=int, default=0, help="which of the class's shapes (0, 1, 2…)")
    p.add_argument(
        "--reader",
        choices=("auto", "embedding", "words"),
        default="auto",
        help="how the object is read: the all-MiniLM-L6-v2 embedding (auto: where installed), "
        "or the word table of class names and synonyms",
    )
    add_shape_arguments(p)
    p.add_argument("--no-repair", action="store_true", help="skip the stability repair")
    add_output_arguments(p)
    return p


def main(argv: list[str]) -> int:
    return guarded(build_parser().parse_args(argv), _run, "image2lego caption", "try 'small'")


def _run(args: argparse.Namespace) -> int:
    from .core import caption, pipeline
    from .lego.convert import ConvertOptions
    from .lego.fileio import check_output_dir

    formats = parse_formats(args.formats)
    text = " ".join(args.caption)
    caption.parse_caption(text, args.seed, args.reader)  # fails before any work
    check_output_dir(args.out)
    opt = pipeline.PipelineOptions(
        convert=ConvertOptions(scale=args.scale, brick_types=args.bricks, seed=args.seed),
        repair=not args.no_repair,
    )
    t0 = time.perf_counter()
    with progress_bar("Building the caption") as on_progress:
        steps = caption.caption_to_lego_steps(text, opt, args.seed, reader=args.reader)
        result = pipeline.run(steps, on_progress)
    written, summary = write_products(result, args, formats)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    info = result.model.meta["caption"]
    from .lego.colors import color_name

    colour = color_name(info["color"]) if info["color"] is not None else "default colour"
    blend = ""
    if info["blend"] is not None:
        blend = f" blended {info['blend_weight']:.0%} with {info['blend'].replace('_', ' ')}"
    log.info(
        f"Caption: {info['class'].replace('_', ' ')}{blend} (shape {info['variant'] + 1} of "
        f"{info['variants']}), {colour}, {info['resolution']}³, {info['cells']} cells"
    )
    near = ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in info["scores"])
    by = f"the {info['reader']} sentence embedding" if near else f"the {info['reader']}"
    log.info(f"Read by {by}" + (f" (the whole caption's nearest: {near})" if near else ""))
    report(summary, written, args.out, result.stability)
    return EXIT_OK

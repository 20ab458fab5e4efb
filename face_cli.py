"""``python -m image2lego face PHOTO``: a face photo → a coloured 3D LEGO bust (see
:mod:`.core.face`).

Writes the same products as the main command: ``model.ldr`` / ``model.mpd``, ``parts.csv``,
``bricklink.xml``, ``rebrickable.csv``, ``voxels.npy``, ``report.json`` (with a ``face``
section: landmarks, faces found, the face's size in pixels, colours, time per stage),
``input.png`` (the photo at one pixel per stud) and ``mask.png`` (the face outline) and, with
Blender's Python module, ``render.png``, ``instructions/`` and ``model.blend``. Needs the
optional mediapipe extra (``requirements-face.lock`` on Python 3.9-3.12, or
``requirements-face-tasks.lock`` on any Python 3.9+, 3.13 included).
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
from .cli_output import captured_native_output, progress_bar
from .lego.errors import get_logger

log = get_logger()

#: a face bust overhangs (chin, nose, brows), so its stability needs the LP; it is checked up
#: to this many bricks by default (the 16-stud bust of the test photo has ~650, 24 studs ~1,900)
FACE_REPAIR_MAX_BRICKS = 4000


def build_parser() -> argparse.ArgumentParser:
    from .core.face import MAX_SIZE, MIN_SIZE

    p = _Parser(
        prog="python -m image2lego face",
        description="Turn a face photo into a coloured 3D LEGO bust (mediapipe face landmarks → "
        "solid relief with a flat back, neck and plinth; k-means colours in CIELAB → LEGO "
        "colours): LDraw, parts lists, renders, instructions.",
    )
    p.add_argument("input", type=Path, help="photo with a face (.png/.jpg/…)")
    p.add_argument("-o", "--out", type=_folder, default=Path("out/face"), help="output folder")
    p.add_argument(
        "--size",
        type=int,
        default=16,
        help=f"studs across the face ({MIN_SIZE}..{MAX_SIZE}; default 16)",
    )
    add_shape_arguments(p)
    p.add_argument("-k", "--colors", type=int, default=4, help="number of colours (default 4)")
    p.add_argument("--palette", type=str, default=None, help="comma-separated LDraw codes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-repair", action="store_true", help="skip the stability repair")
    p.add_argument(
        "--repair-max-bricks",
        type=int,
        default=FACE_REPAIR_MAX_BRICKS,
        metavar="N",
        help=f"check stability only up to N bricks (default {FACE_REPAIR_MAX_BRICKS}; 0: any)",
    )
    p.add_argument(
        "--no-reinforce",
        action="store_true",
        help="repair by re-tiling only: never add visible props",
    )
    add_output_arguments(p)
    return p


def options(args: argparse.Namespace):
    from .core.face import FaceError, FaceOptions
    from .core.pipeline import PipelineOptions
    from .lego.convert import ConvertOptions

    palette = None
    if args.palette:
        try:
            palette = [int(c) for c in args.palette.split(",") if c.strip()]
        except ValueError:
            raise FaceError(
                f"--palette must be LDraw colour codes like 15,71,0, not {args.palette!r}"
            ) from None
    if args.repair_max_bricks < 0:
        raise FaceError(f"--repair-max-bricks must be >= 0, got {args.repair_max_bricks}")
    pipe = PipelineOptions(
        convert=ConvertOptions(
            scale=args.scale, brick_types=args.bricks, color_mode="photo", seed=args.seed
        ),
        repair=not args.no_repair,
        reinforce=not args.no_reinforce,
        repair_max_bricks=args.repair_max_bricks,
    )
    opt = FaceOptions(size=args.size, k=args.colors, palette=palette, seed=args.seed, pipeline=pipe)
    opt.validate()
    return opt


def main(argv: list[str]) -> int:
    return guarded(build_parser().parse_args(argv), _run, "image2lego face", "try a smaller --size")


def _run(args: argparse.Namespace) -> int:
    from .core import face, pipeline
    from .lego.fileio import check_output_dir

    formats = parse_formats(args.formats)
    opt = options(args)
    check_output_dir(args.out)
    src: Path = args.input
    if not src.exists():
        raise ValueError(f"input not found: {src}")
    t0 = time.perf_counter()
    # mediapipe's native log (TensorFlow Lite delegate notes) only with -v
    with captured_native_output("mediapipe"), progress_bar("Building the face") as on_progress:
        result = pipeline.run(face.face_to_lego_steps(src, opt), on_progress)
    written, summary = write_products(result, args, formats, source=src)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    info = result.model.meta.get("face", {})
    t_landmarks = info.get("seconds", {}).get("landmarks", 0)
    log.info(
        f"Face: {info.get('landmarks')} landmarks in {t_landmarks:.2f} s, "
        f"{info.get('face_px', ['?'])[0]} px wide → {opt.size} studs; colours "
        + ", ".join(_color_names(info.get("colors", [])))
    )
    report(summary, written, args.out, result.stability)
    return EXIT_OK


def _color_names(codes) -> list[str]:
    from .lego.colors import color_name

    return [f"{color_name(c)} ({c})" for c in codes]

"""``python -m image2lego``: photo or voxel file in, a buildable LEGO model out.

Writes into the output folder: ``model.ldr`` and ``model.mpd`` (LDraw), ``parts.csv``,
``bricklink.xml``, ``rebrickable.csv``, ``voxels.npy``, ``report.json`` and, for a photo, the
``input.png``/``mask.png`` the network saw. With Blender's Python module (``bpy``) available it
also writes ``render.png`` (the LEGO model), ``instructions/`` (per-step renders, HTML and PDF
booklet) and ``model.blend``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .cli_output import captured_native_output, progress_bar, summary_lines
from .lego import choices, staging
from .lego.errors import Image2LegoError, get_logger, logging_to_stdout
from .lego.fileio import check_path_text

if TYPE_CHECKING:
    from .lego.summary import Report

log = get_logger()

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
VOXEL_SUFFIXES = {".npy", ".npz"}
FORMATS = ("ldr", "mpd", "csv", "bricklink", "rebrickable")

#: Exit codes (README "Exit codes"): 0 every output written (the model may still be unstable:
#: see the summary / report.json); 2 a clear one-line error (bad input, missing weights,
#: unwritable folder; argparse's usage errors use 2 too); 130 interrupted (Ctrl-C). Anything
#: else (1 with a traceback) is a bug.
EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED = 0, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (``image2lego: error: …``) instead of the usage text."""

    def error(self, message: str):
        first = " ".join(str(message).split())
        self.exit(2, f"image2lego: error: {first} (see --help)\n")


def _folder(s: str) -> Path:
    if not s.strip() or s != s.strip() or any(c in s for c in "\n\r\0"):
        raise argparse.ArgumentTypeError(f"-o/--out must name a folder, got {s!r}")
    return Path(s)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m image2lego",
        description="Turn a photo (or a voxel grid) into a buildable LEGO model: LDraw file, "
        "parts lists, renders, step-by-step instructions.",
        epilog="Other commands (each has its own --help): `python -m image2lego face PHOTO` "
        '(a 3D LEGO bust of a face), `… mosaic PHOTO` (a 2D mosaic), `… caption "a small red '
        'sofa"` (or `… text`: a model from a caption). Exit codes: 0 done, 2 error, '
        "130 interrupted.",
    )
    p.add_argument(
        "input",
        type=Path,
        help="photo (.png/.jpg/…) or voxel grid (.npy/.npz, bool [x, y, z], Z up)",
    )
    p.add_argument(
        "-o", "--out", type=_folder, default=Path("out"), help="output folder (default: out)"
    )
    p.add_argument(
        "-r",
        "--resolution",
        type=int,
        default=32,
        choices=(4, 8, 16, 32, 64),
        help="voxel resolution predicted from a photo (default 32; 64 with weights that have "
        "a 64³ level)",
    )
    add_shape_arguments(p)
    add_choice_argument(p, "--hollow", choices.HOLLOW, "fill")
    p.add_argument("--wall", type=int, default=1, help="shell wall thickness in studs")
    p.add_argument("--no-supports", action="store_true", help="shell mode: no inner columns")
    p.add_argument(
        "--color-mode",
        choices=choices.values(choices.COLOR_MODE),
        default="single",
        help=choices.help_text(choices.COLOR_MODE, "single"),
    )
    p.add_argument(
        "--color",
        type=int,
        default=71,
        help="LDraw colour code for --color-mode single (default 71, light bluish grey)",
    )
    p.add_argument("-k", "--colors", type=int, default=4, help="number of colours (k-means k)")
    p.add_argument(
        "--palette",
        type=str,
        default=None,
        help="comma-separated LDraw colour codes to restrict colours to",
    )
    p.add_argument(
        "--any-elements",
        action="store_true",
        help="allow any part in any colour (default: only combinations that exist as real LEGO "
        "elements, from Rebrickable's element table)",
    )
    p.add_argument(
        "--element-strategy",
        choices=choices.values(choices.ELEMENT_STRATEGY),
        default="split",
        help=choices.help_text(choices.ELEMENT_STRATEGY, "split"),
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-repair", action="store_true", help="skip the stability repair")
    p.add_argument(
        "--repair-max-bricks",
        type=int,
        default=None,
        metavar="N",
        help=(
            "check stability only for models up to N bricks (default 5000; 0: no limit); "
            "every check also stops after 120 s"
        ),
    )
    p.add_argument(
        "--no-reinforce",
        action="store_true",
        help="repair by re-tiling only: never add visible props (keeps the exact shape)",
    )
    p.add_argument(
        "--keep-fragments",
        action="store_true",
        help="photos: keep the specks of the prediction too (default: drop floating pieces "
        "under 1 %% of the cells; larger ones are bridged or stood on a support)",
    )
    add_output_arguments(p)
    p.add_argument("--weights", type=Path, default=None, help="folder with the model weights")
    p.add_argument(
        "--mask", type=Path, default=None,
        help="photo: object mask image (white/opaque = object) instead of background removal",
    )  # fmt: skip
    p.add_argument(
        "--crop", default=None, metavar="L,T,R,B",
        help="photo: rectangle around the object in pixels (left,top,right,bottom); "
        "background removal starts from it",
    )  # fmt: skip
    return p


def _options(args):
    from .core.pipeline import PipelineOptions
    from .core.preprocess import parse_rect
    from .lego.convert import ConvertOptions

    palette = None
    if args.palette:
        try:
            palette = [int(c) for c in args.palette.split(",") if c.strip()]
        except ValueError:
            raise ValueError(
                f"--palette must be LDraw colour codes like 15,71,0, not {args.palette!r}"
            ) from None
    convert = ConvertOptions(
        scale=args.scale,
        brick_types=args.bricks,
        hollow=args.hollow,
        wall_thickness=args.wall,
        supports=not args.no_supports,
        color_mode=args.color_mode,
        k=args.colors,
        palette=palette,
        color=args.color,
        seed=args.seed,
        real_elements=not args.any_elements,
        element_strategy=args.element_strategy,
    )
    return PipelineOptions(
        resolution=args.resolution,
        convert=convert,
        weights_dir=args.weights,
        repair=not args.no_repair,
        reinforce=not args.no_reinforce,
        drop_fragments=0.0 if args.keep_fragments else PipelineOptions.drop_fragments,
        mask=args.mask,
        crop=parse_rect(args.crop) if args.crop else None,
        repair_max_bricks=(
            PipelineOptions.repair_max_bricks
            if args.repair_max_bricks is None
            else args.repair_max_bricks
        ),
    )


def add_choice_argument(p: argparse.ArgumentParser, flag: str, options, default: str) -> None:
    """An option whose values, help and default come from :mod:`.lego.choices`."""
    p.add_argument(
        flag,
        choices=choices.values(options),
        default=default,
        help=choices.help_text(options, default),
    )


def add_shape_arguments(p: argparse.ArgumentParser) -> None:
    """``--scale`` and ``--bricks``, which every command that builds bricks offers."""
    add_choice_argument(p, "--scale", choices.SCALE, "proportional")
    add_choice_argument(p, "--bricks", choices.BRICK_TYPES, "mixed")


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    """The options every building command shares: which files, Blender's outputs, verbosity."""
    p.add_argument(
        "--formats",
        type=str,
        default=",".join(FORMATS),
        help=f"comma-separated outputs among {', '.join(FORMATS)}",
    )
    p.add_argument("--no-render", action="store_true", help="skip render.png (needs bpy)")
    p.add_argument("--no-instructions", action="store_true", help="skip instructions (needs bpy)")
    p.add_argument("--no-blend", action="store_true", help="skip model.blend (needs bpy)")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors and warnings only")
    p.add_argument("-v", "--verbose", action="store_true", help="print debugging messages too")


def parse_formats(text: str) -> list[str]:
    """``--formats`` → the list of outputs, refusing unknown ones in one line."""
    formats = [f.strip() for f in text.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown --formats {unknown}; choose among {list(FORMATS)}")
    return formats


def log_level(args: argparse.Namespace) -> int:
    """``-q`` → warnings and errors only, ``-v`` → debug messages too, else info."""
    if args.quiet:
        return logging.WARNING
    return logging.DEBUG if args.verbose else logging.INFO


SUBCOMMANDS = ("mosaic", "face", "caption", "text")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "mosaic":  # python -m image2lego mosaic PHOTO …
        from . import mosaic_cli

        return mosaic_cli.main(argv[1:])
    if argv and argv[0] in ("caption", "text"):  # python -m image2lego caption "a red car" …
        from . import caption_cli

        return caption_cli.main(argv[1:])
    if argv and argv[0] == "face":  # python -m image2lego face PHOTO …
        from . import face_cli

        return face_cli.main(argv[1:])
    args = build_parser().parse_args(argv)

    def checked_run(args):
        _check_args(args)
        return _run(args)

    return guarded(args, checked_run, "image2lego", "try a smaller grid or --no-repair")


def guarded(args: argparse.Namespace, run, prog: str, memory_hint: str) -> int:
    """``run(args)`` with the log level of ``-q``/``-v`` and every error a user can cause as
    one line on stderr and an exit code (0 / 2 / 130): the one error policy of every command."""
    done_before = len(staging.COMMITTED)
    with logging_to_stdout(log_level(args)):
        try:
            return run(args)
        except KeyboardInterrupt:
            written = staging.COMMITTED[done_before:]
            where = (
                f"this run's result was already written in full to {written[-1]}"
                if written
                else "the output folder was left as it was"
            )
            print(f"{prog}: interrupted; {where}", file=sys.stderr)
            return EXIT_INTERRUPTED
        except MemoryError:
            print(f"{prog}: error: out of memory ({memory_hint})", file=sys.stderr)
            return EXIT_ERROR
        except (Image2LegoError, ValueError, TypeError, OSError, KeyError) as exc:
            # Image2LegoError: every error the user can cause (bad image, voxel or LDraw file,
            # missing/corrupt weights, …); the built-in ones: argument checks and the disk
            print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
            return EXIT_ERROR


def write_products(
    result, args: argparse.Namespace, formats, source=None
) -> tuple[dict[str, Path], Report]:
    """The files of a built model into ``args.out`` (all or nothing), with Blender's log
    captured (shown with ``-v``) and progress bars; returns ``(written, summary)``."""
    from . import outputs

    blender = not (args.no_render and args.no_instructions and args.no_blend)
    # Blender's own log (a "Saved: …" line per render, EGL notes) only with -v.
    capture: contextlib.AbstractContextManager = (
        captured_native_output() if blender else contextlib.nullcontext([])
    )
    with capture, progress_bar("Blender outputs") as on_progress:
        written = outputs.write_all(
            result,
            args.out,
            formats=formats,
            render=not args.no_render,
            instructions=not args.no_instructions,
            blend=not args.no_blend,
            source=source,
            progress=on_progress,
        )
    return written, outputs.summary(result)


def report(summary: Report, written: dict, out, stability) -> None:
    """The short summary a run ends with (``-v``: the full report and every file)."""
    log.debug(json.dumps(summary, indent=2))
    if stability is not None:
        log.debug(stability.summary())
    for kind, path in written.items():
        log.debug(f"  {kind:>17}: {path}")
    for line in summary_lines(summary, written, out, stability):
        log.info(line)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 400 else text[:397] + "..."


def _check_args(args: argparse.Namespace) -> None:
    """Option checks that need no work done: refuse before anything is read or written."""
    if not str(args.out).strip() or str(args.out) != str(args.out).strip():
        raise ValueError(f"-o/--out must name a folder, got {str(args.out)!r}")
    check_path_text(args.out, "-o/--out")
    check_path_text(args.input, "input file name")
    from .lego.colors import LDRAW_COLORS

    if args.color not in LDRAW_COLORS:
        raise ValueError(f"--color {args.color} is not an LDraw solid colour code")
    if args.palette:
        for tok in args.palette.split(","):
            tok = tok.strip()
            if tok and not (tok.lstrip("-").isdigit() and int(tok) in LDRAW_COLORS):
                raise ValueError(f"--palette entry {tok!r} is not an LDraw solid colour code")
    formats = {f.strip() for f in args.formats.split(",") if f.strip()}
    for service in ("bricklink", "rebrickable"):
        code = args.color
        if args.color_mode == "single" and service in formats:
            if getattr(LDRAW_COLORS[code], f"{service}_id") is None:
                raise ValueError(
                    f"--color {code} ({LDRAW_COLORS[code].name}) has no {service} colour id; "
                    f"pick another colour or leave {service} out of --formats"
                )
    if not 1 <= args.colors <= 64:
        raise ValueError(f"-k/--colors must be in 1..64, got {args.colors}")
    if not 1 <= args.wall <= 64:
        raise ValueError(f"--wall must be in 1..64 studs, got {args.wall}")


def _run(args: argparse.Namespace) -> int:
    from .core import pipeline

    formats = parse_formats(args.formats)
    src: Path = args.input
    suffix = src.suffix.lower()
    if not src.exists():
        raise ValueError(f"input not found: {src}")
    options = _options(args)
    t0 = time.perf_counter()
    if suffix in VOXEL_SUFFIXES:
        grid = pipeline.load_voxel_file(src)
        steps = pipeline.voxels_to_lego_steps(grid, options)
    elif suffix in IMAGE_SUFFIXES:
        steps = pipeline.image_to_lego_steps(src, options)
    else:
        raise ValueError(
            f"{src.name}: unsupported input type {suffix!r}; give an image "
            f"({', '.join(sorted(IMAGE_SUFFIXES))}) or a voxel grid (.npy, .npz)"
        )
    with progress_bar("Building the model") as on_progress:
        result = pipeline.run(steps, on_progress)
    written, summary = write_products(result, args, formats, source=src)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    report(summary, written, args.out, result.stability)
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

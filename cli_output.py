"""What the command line shows while it works, and the short summary at the end.

- :func:`progress_bar`: one `tqdm <https://tqdm.github.io>`_ bar for a long stage, fed by the
  ``Progress(fraction, message)`` objects every step generator yields. On a terminal it is a
  live bar on stderr; when stderr is not a terminal (CI logs, pipes) or with ``-q`` it draws
  nothing and the stage's messages go to the debug log (``-v``).
- :func:`captured_native_output`: Blender (through ``bpy``) prints its own log from C code
  straight to the process's stdout/stderr file descriptors — a ``Saved: '…/full.png'`` line per
  render, ``EGL Error`` lines from software OpenGL. This redirects descriptors 1 and 2 into a
  temporary file for the duration and replays the lines to the debug log (``-v``), so a normal
  run shows none of them. Python-level output (our log lines, the progress bar) keeps going to
  the terminal.
- :func:`summary_lines`: the model in at most ~15 lines.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from .lego.errors import get_logger

if TYPE_CHECKING:
    from .lego.summary import Report

log = get_logger()

ProgressCallback = Callable[[object], None]


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


@contextlib.contextmanager
def progress_bar(
    desc: str, *, enabled: bool | None = None, stream=None
) -> Iterator[ProgressCallback]:
    """A callback ``on_progress(p)`` drawing ``p.fraction`` (0..1) and ``p.message``.

    ``enabled`` defaults to: ``stream`` (default ``sys.stderr``) is a terminal and the
    ``image2lego`` logger shows info messages (not ``-q``).
    """
    stream = sys.stderr if stream is None else stream
    if enabled is None:
        enabled = _is_terminal(stream) and log.isEnabledFor(logging.INFO)
    if not enabled:

        def quiet(p) -> None:
            log.debug(f"[{p.fraction:4.0%}] {p.message}")

        yield quiet
        return
    from tqdm import tqdm

    bar = tqdm(
        total=1000,
        desc=desc,
        file=stream,
        leave=False,
        dynamic_ncols=True,
        bar_format="{desc} {percentage:3.0f}% |{bar}| {elapsed}<{remaining}  {postfix}",
    )

    def update(p) -> None:
        n = min(1000, max(0, round(float(p.fraction) * 1000)))
        if n > bar.n:
            bar.update(n - bar.n)
        bar.postfix = str(p.message)[:60]  # (set_postfix_str would prefix ", ")
        bar.refresh()
        log.debug(f"[{p.fraction:4.0%}] {p.message}")

    try:
        yield update
    finally:
        bar.close()


def _fflush_c() -> None:
    """Flush C stdio buffers (Blender's printf output) into the descriptors."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # pragma: no cover - no libc symbol table (Windows)
        pass


def _fd(stream) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, ValueError, OSError):
        return None


@contextlib.contextmanager
def captured_native_output(label: str = "blender") -> Iterator[list[str]]:
    """Redirect file descriptors 1 and 2 into a temporary file; yield the list that receives
    the captured lines on exit (also sent to the debug log as ``label: line``).

    Logging handlers and ``sys.stderr`` that write to the real descriptors are pointed at
    duplicates of the originals meanwhile, so our own output still shows.
    """
    lines: list[str] = []
    for s in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            s.flush()
    _fflush_c()
    sink = tempfile.TemporaryFile(mode="w+b")
    saved: dict[int, int] = {}
    swapped_sys: list[tuple[str, TextIO]] = []
    swapped_handlers: list[tuple[logging.StreamHandler, object]] = []
    try:
        for fd in (1, 2):
            try:
                saved[fd] = os.dup(fd)
            except OSError:
                continue
            os.dup2(sink.fileno(), fd)
        # Our own log lines and the progress bar keep the real terminal: logging handlers on
        # the redirected descriptors and ``sys.stderr`` (tqdm, tracebacks) get duplicates of
        # the originals. ``sys.stdout`` stays redirected: Blender prints operator reports
        # ("Info: Saved copy as …") through it.
        replacement: dict[int, TextIO] = {}
        for name in ("stdout", "stderr"):
            s = getattr(sys, name)
            sfd = _fd(s)
            if sfd is not None and sfd in saved:
                new = os.fdopen(os.dup(saved[sfd]), "w", buffering=1, encoding="utf-8",
                                errors="replace", closefd=True)  # fmt: skip
                replacement[id(s)] = new
                if name == "stderr":
                    swapped_sys.append((name, s))
                    setattr(sys, name, new)
                else:
                    swapped_sys.append(("", new))  # only to close it afterwards
        for h in [*log.handlers, *logging.getLogger().handlers]:
            if isinstance(h, logging.StreamHandler) and id(h.stream) in replacement:
                swapped_handlers.append((h, h.stream))
                h.setStream(replacement[id(h.stream)])
        yield lines
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()  # Blender's reports written through it belong to the capture
        _fflush_c()
        for h, old in swapped_handlers:
            h.setStream(old)
        for name, old in swapped_sys:
            if not name:  # a stream only the logging handlers used
                with contextlib.suppress(Exception):
                    old.close()
                continue
            new = getattr(sys, name)
            setattr(sys, name, old)
            with contextlib.suppress(Exception):
                new.close()

        for fd, dup in saved.items():
            os.dup2(dup, fd)
            os.close(dup)
        sink.seek(0)
        text = sink.read().decode("utf-8", "replace")
        sink.close()
        lines.extend(ln.rstrip() for ln in text.splitlines() if ln.strip())
        for ln in lines:
            log.debug(f"{label}: {ln}")
        if lines:
            log.debug(f"({len(lines)} line(s) of {label} output; shown with -v only)")


# --------------------------------------------------------------------------- summary


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def aggregate_unrepairable(items) -> str | None:
    """One line for every brick the repair could not fix: ``[(brick, reason)]`` → counts per
    reason, most common first (at most three named)."""
    items = list(items)
    if not items:
        return None
    by: dict[str, int] = {}
    for _i, why in items:
        by[why] = by.get(why, 0) + 1
    top = sorted(by.items(), key=lambda kv: -kv[1])
    shown = "; ".join(f"{n}x {why}" for why, n in top[:3])
    more = f"; {len(top) - 3} other reason(s)" if len(top) > 3 else ""
    return f"could not fix {_plural(len(items), 'brick')}: {shown}{more} (details: report.json)"


def summary_lines(
    summary: Report, written: Mapping[str, Path], out: Path, stability=None
) -> list[str]:
    """The end-of-run summary: what was built, whether it stands, warnings, where the files
    are. At most ~15 lines whatever the model (the full facts are in ``report.json``)."""
    lines = []
    head = _plural(summary["bricks"], "brick")
    counts = ((summary["parts"], "part kind"), (summary["colors"], "colour"))
    head += " (" + ", ".join(_plural(n, w) for n, w in (*counts, (summary["steps"], "step"))) + ")"
    secs = summary.get("seconds")
    lines.append(f"Built {head}" + (f" in {secs:.1f} s" if secs is not None else ""))
    if stability is not None:
        after = stability.after
        state = "stable" if stability.stable else "NOT stable"
        facts = [
            _plural(len(after.unsupported), "unsupported brick"),
            _plural(int(after.n_overloaded), "overloaded connection"),
        ]
        if stability.reinforcement_bricks:
            facts.append(_plural(int(stability.reinforcement_bricks), "prop") + " added")
        lines.append(f"Stability: {state} ({', '.join(facts)})")
        agg = aggregate_unrepairable(stability.unrepairable)
        if agg:
            lines.append("  " + agg)
    warnings = list(summary.get("warnings") or [])
    for w in warnings[:3]:
        lines.append(f"Warning: {w}")
    if len(warnings) > 3:
        lines.append(f"  … and {len(warnings) - 3} more warning(s) in report.json")
    names = [Path(p).name for p in written.values()]
    lines.append(f"Wrote {len(names)} files to {out}:")
    row = "  "
    rows = []
    for n in names:
        if len(row) + len(n) + 2 > 96 and row.strip():
            rows.append(row.rstrip(", "))
            row = "  "
        row += n + ", "
    if row.strip():
        rows.append(row.rstrip(", "))
    lines.extend(rows[:4])
    return lines

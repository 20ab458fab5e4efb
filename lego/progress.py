"""Long work as step generators: each step yields a :class:`Progress`, the generator returns
its result. One driver (:func:`run`) for headless callers and tests; Blender's worker thread and
modal operators step the same generators one ``next()`` at a time, so ESC and the UI stay live.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass
class Progress:
    fraction: float  # 0..1 of the whole job
    message: str


Steps = Generator[Progress, None, T]


def run(steps: Steps[T], on_progress: Callable[[Progress], None] | None = None) -> T:
    """Drive a step generator to the end and return its result."""
    while True:
        try:
            p = next(steps)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(p)


def scaled(steps: Steps[T], start: float, end: float) -> Steps[T]:
    """Re-yield ``steps`` with fractions mapped from 0..1 onto ``start``..``end`` (a sub-job
    inside a bigger one); returns its result (``x = yield from scaled(...)``)."""
    while True:
        try:
            p = next(steps)
        except StopIteration as stop:
            return stop.value
        yield Progress(start + (end - start) * p.fraction, p.message)

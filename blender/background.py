"""Run a pipeline step generator off Blender's main thread, so the UI keeps redrawing.

The generators of :mod:`..core.pipeline` touch no bpy data (preprocessing, the numpy network,
brick conversion, stability repair are numpy/scipy), so a worker thread drives them; the main
thread only polls (a few microseconds per timer tick) and, at the end, builds the scene.

    job = StepJob(steps).start()
    ...every timer tick:  state = job.poll()   # ("running", Progress) / ("done", result) /
                                               # ("error", exc) / ("cancelled", None)
    ...on ESC:            job.cancel()         # returns at once; the worker stops after its
                                               # current step and its result is thrown away

A cancelled job never reaches the scene: the caller builds only from a ``"done"`` result, so a
cancelled run leaves the scene as it was. Thread safety: the worker only writes its own fields;
the main thread reads them after ``done`` is set (an Event: a memory barrier).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..lego.progress import Progress, Steps
from ..lego.progress import run as run_steps


class _Cancelled(Exception):
    """Raised between two steps to leave :func:`..lego.progress.run` when ESC was pressed."""


@dataclass
class StepJob:
    steps: Steps[Any]  # a generator yielding Progress and returning a result
    progress: Progress | None = None
    result: Any = None
    error: BaseException | None = None
    #: main-thread-free seconds the worker spent per step message (for the benchmark)
    step_seconds: list[tuple[str, float]] = field(default_factory=list)
    _cancel: threading.Event = field(default_factory=threading.Event)
    _done: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _t: float = 0.0
    #: called by :meth:`cancel` (e.g. :meth:`.subproc.ChildRun.kill`: the steps' child process
    #: ends at once instead of after its current step)
    on_cancel: Any = None

    def start(self) -> StepJob:
        self._thread = threading.Thread(target=self._run, name="image2lego-job", daemon=True)
        self._thread.start()
        return self

    def _step_done(self, p: Progress) -> None:
        """After each step (lego.progress.run's callback): time it, publish it, stop on ESC."""
        now = time.perf_counter()
        label = self.progress.message if self.progress is not None else "start"
        self.step_seconds.append((label, now - self._t))
        self._t = now
        self.progress = p
        if self._cancel.is_set():
            raise _Cancelled

    def _run(self) -> None:
        try:
            self._t = time.perf_counter()
            if not self._cancel.is_set():
                self.result = run_steps(self.steps, self._step_done)
        except _Cancelled:
            self.steps.close()  # the generator's finally blocks run (temporary files go)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc
        finally:
            self._done.set()

    def cancel(self) -> None:
        """Ask the worker to stop; returns immediately (the result will be discarded)."""
        self._cancel.set()
        if self.on_cancel is not None:
            self.on_cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def poll(self) -> tuple[str, Any]:
        if self._cancel.is_set():
            return "cancelled", None
        if not self._done.is_set():
            return "running", self.progress
        if self.error is not None:
            return "error", self.error
        return "done", self.result

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker has finished (tests, headless runs)."""
        return self._done.wait(timeout)

"""Long work runs off the main thread: the main thread's polls are short, ESC (cancel) returns
at once and throws the result away, errors come back to the main thread."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("bpy")

from image2lego.blender.background import StepJob  # noqa: E402
from image2lego.core.pipeline import PipelineOptions, Progress, voxels_to_lego_steps  # noqa: E402


def _slow_steps(n=5, dt=0.2, log=None):
    try:
        for i in range(n):
            if log is not None:
                log.append(threading.get_ident())
            time.sleep(dt)
            yield Progress(i / n, f"step {i}")
        return "result"
    finally:
        if log is not None:
            log.append("closed")


def test_steps_run_on_a_worker_and_polls_are_short():
    log = []
    job = StepJob(_slow_steps(log=log)).start()
    longest, seen = 0.0, set()
    while True:
        t = time.perf_counter()
        state, value = job.poll()
        longest = max(longest, time.perf_counter() - t)
        if state != "running":
            break
        if value is not None:
            seen.add(value.message)
        time.sleep(0.01)
    assert (state, value) == ("done", "result")
    assert threading.get_ident() not in [x for x in log if x != "closed"]
    assert len(seen) >= 3  # progress is visible while it runs
    assert longest < 0.01  # 1 s of work, the main thread never blocked for 10 ms


def test_cancel_returns_at_once_and_discards_the_result():
    log = []
    job = StepJob(_slow_steps(n=50, dt=0.1, log=log)).start()
    time.sleep(0.25)
    t = time.perf_counter()
    job.cancel()
    assert job.poll() == ("cancelled", None)
    assert time.perf_counter() - t < 0.05
    assert job.wait(0.5)  # the worker stops after its current step (0.1 s here)
    assert log[-1] == "closed" and job.poll() == ("cancelled", None)


def test_errors_reach_the_main_thread():
    def bad():
        yield Progress(0.0, "x")
        raise ValueError("broken input")

    job = StepJob(bad()).start()
    job.wait(2)
    state, exc = job.poll()
    assert state == "error" and isinstance(exc, ValueError) and "broken input" in str(exc)


def test_a_real_pipeline_runs_on_the_worker():
    grid = np.zeros((8, 8, 8), bool)
    grid[2:6, 2:6, 0:4] = True
    job = StepJob(voxels_to_lego_steps(grid, PipelineOptions(repair=False))).start()
    assert job.wait(60)
    state, result = job.poll()
    assert state == "done" and len(result.model) > 0


def test_worker_writes_the_files_and_the_main_thread_only_builds(tmp_path, monkeypatch):
    import bpy

    from image2lego.blender import jobs

    grid = np.zeros((6, 6, 6), dtype=bool)
    grid[1:5, 1:5, :4] = True
    steps = voxels_to_lego_steps(grid, PipelineOptions(repair=False))
    job = StepJob(jobs.prepare_steps(steps, tmp_path, "Cube")).start()
    assert job.wait(60)
    state, prepared = job.poll()
    assert state == "done" and isinstance(prepared, jobs.Prepared)
    assert (tmp_path / "Cube.ldr").is_file()  # written by the worker
    assert prepared.stats["bricks"] == len(prepared.result.model) and prepared.stats["connected"]

    def no_writes(*a, **k):
        raise AssertionError("finish wrote the files again on the main thread")

    monkeypatch.setattr(jobs, "write_outputs", no_writes)
    coll = jobs.finish(bpy.context, prepared, name="Cube")
    assert coll.name == "Cube" and bpy.data.collections.get("Cube") is coll

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


# --------------------------------------------------------------------------- child process


def _grid():
    g = np.zeros((6, 5, 4), dtype=bool)
    g[:, :3, 0] = True
    g[:3, :, 1:] = True
    return g


def test_child_run_gives_the_in_process_result_and_errors():
    """The same bricks as in this process; the child's error comes back as the same type with
    the same one-line message; where no child can start, the steps run here."""
    from image2lego.blender.subproc import ChildRun
    from image2lego.lego.convert import ConvertOptions
    from image2lego.lego.progress import run

    opts = PipelineOptions(convert=ConvertOptions(color_mode="single"))
    want = run(voxels_to_lego_steps(_grid(), opts))
    child = ChildRun("core.pipeline:voxels_to_lego_steps", (_grid(), opts))
    got = run(child)
    assert child.in_child is True and got.model.bricks == want.model.bricks
    bad = np.full((3, 3, 3), 2)
    with pytest.raises(Exception) as here:
        run(voxels_to_lego_steps(bad, opts))
    with pytest.raises(Exception) as there:
        run(ChildRun("core.pipeline:voxels_to_lego_steps", (bad, opts)))
    assert type(there.value) is type(here.value) and str(there.value) == str(here.value)
    nowhere = ChildRun("core.pipeline:voxels_to_lego_steps", (_grid(), opts), "/no/python")
    assert run(nowhere).model.bricks == want.model.bricks and nowhere.in_child is False


def test_esc_kills_a_child_in_the_middle_of_a_long_step():
    """A thread can only stop between steps; a child process is killed at once: ESC during a
    30 s step ends the job within 0.5 s and leaves no process behind."""
    from image2lego.blender.subproc import ChildRun

    run = ChildRun("tests._slow_steps:one_long_step", (30.0,))
    job = StepJob(run, on_cancel=run.kill).start()
    deadline = time.monotonic() + 60
    while (job.progress is None or job.progress.message != "quick step") and not job._done.is_set():
        assert time.monotonic() < deadline, "the child never reported its first step"
        time.sleep(0.02)
    assert run.in_child is True
    time.sleep(0.3)  # well inside the long step
    t = time.perf_counter()
    job.cancel()
    assert job.poll() == ("cancelled", None)
    assert job.wait(2.0)
    assert time.perf_counter() - t < 0.5
    assert run._proc.poll() is not None  # the child is gone


def test_which_runs_go_to_a_child(monkeypatch):
    from image2lego.blender import subproc

    monkeypatch.delenv(subproc.ENV, raising=False)
    assert not subproc.use_child(32) and subproc.use_child(subproc.CHILD_FROM_RESOLUTION)
    monkeypatch.setenv(subproc.ENV, "never")
    assert not subproc.use_child(64)
    monkeypatch.setenv(subproc.ENV, "always")
    assert subproc.use_child(4)
    monkeypatch.setattr(subproc, "python_executable", lambda: None)  # no Python to start
    assert not subproc.use_child(64)

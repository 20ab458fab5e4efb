"""How long Image → LEGO blocks Blender's main thread (the UI freezes for that long).

Before (the old modal operator): every pipeline step ran on the main thread inside one timer
tick, so the longest step is the longest freeze. After: the steps run on a worker thread
(``blender/background.py``), which also writes the output files and computes the stats
(``jobs.prepare_steps``); the main thread only polls every 10 ms (the operator's timer is
0.1 s) and builds the scene at the end. Both write the outputs to a temporary folder.
Reports the longest main-thread block of each, for the same photo and settings, in bpy
(background mode).

    python benchmarks/bench_blender_ui.py [--image examples/chair.png]
    python benchmarks/bench_blender_ui.py --models   # scene building for bigger models

``--models`` times what stays on the main thread for bigger models: building the scene of
coloured domes of 16³ to 56³ voxels (about 200 to 4,000 bricks) with stats precomputed (as
the worker does), both scene methods, median of 3.

``--cancel`` measures ESC: the operator's ESC handler calls ``StepJob.cancel()`` and returns
(the UI is free at once); the worker thread stops at the end of its current step, a child
process (64³ and up, ``blender/subproc.py``) is killed at once. For each
resolution, ESC at random moments of an Image → LEGO run (``--tries`` of them, seeded):
how long ``cancel()`` takes, how long until the worker has stopped, and that the scene and the
output folder stayed as they were.

    python benchmarks/bench_blender_ui.py --cancel [--resolutions 32,64] [--tries 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


_JSON: list[Path | None] = [None]


def _record(kind: str, **figures) -> None:
    """Append one run's figures (with the time and the machine's load) to ``--json``."""
    import json
    import os

    if _JSON[0] is None:
        return
    path = _JSON[0]
    runs = json.loads(path.read_text()) if path.is_file() else []
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load = [round(x, 2) for x in os.getloadavg()]
    runs.append({"kind": kind, "when": when, "load_1_5_15": load, **figures})
    path.write_text(json.dumps(runs, indent=1) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", type=Path, default=REPO / "examples" / "chair.png")
    ap.add_argument("--models", action="store_true", help="scene building for bigger models")
    ap.add_argument("--cancel", action="store_true", help="ESC latency at random moments")
    ap.add_argument("--resolutions", default="32", help="--cancel: comma-separated")
    ap.add_argument("--tries", type=int, default=8, help="--cancel: ESC presses per resolution")
    ap.add_argument("--json", type=Path, help="append this run's figures to a JSON list here")
    args = ap.parse_args(argv)
    _JSON[0] = args.json
    if args.models:
        return scene_sizes()
    if args.cancel:
        res = [int(r) for r in args.resolutions.split(",")]
        return cancel_latency(args.image, res, args.tries)

    import tempfile

    import bpy

    import image2lego
    from image2lego.blender import jobs
    from image2lego.blender.background import StepJob

    image2lego.register()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    s = bpy.context.scene.image2lego
    s.image_path = str(args.image)
    s.output_dir = first_out = tempfile.mkdtemp(prefix="i2l-bench-ui-")

    # before: one step per timer tick on the main thread
    steps, out_dir = jobs.image_steps(bpy.context)
    before, label = [], "start"
    while True:
        t = time.perf_counter()
        try:
            p = next(steps)
        except StopIteration as stop:
            result = stop.value
            before.append((label, time.perf_counter() - t))
            break
        before.append((label, time.perf_counter() - t))
        label = p.message
    t = time.perf_counter()
    jobs.finish(bpy.context, result, out_dir=out_dir)
    build_before = time.perf_counter() - t

    # after: worker thread, main thread polls
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.image2lego.image_path = str(args.image)
    bpy.context.scene.image2lego.output_dir = s_out = tempfile.mkdtemp(prefix="i2l-bench-ui-")
    steps, out_dir = jobs.image_steps(bpy.context)
    assert out_dir is not None and str(out_dir) == s_out
    name = jobs.model_name(bpy.context)
    job = StepJob(jobs.prepare_steps(steps, out_dir, name)).start()
    polls = []
    t0 = time.perf_counter()
    while True:
        t = time.perf_counter()
        state, value = job.poll()
        polls.append(time.perf_counter() - t)
        if state != "running":
            break
        time.sleep(0.01)
    total = time.perf_counter() - t0
    if state != "done":
        print(f"job ended with {state}: {value}", file=sys.stderr)
        return 1
    t, c = time.perf_counter(), time.thread_time()
    jobs.finish(bpy.context, value, name=name)
    build_after = time.perf_counter() - t
    build_after_cpu = time.thread_time() - c

    print("before (one step per tick on the main thread):")
    for lab, dt in before:
        print(f"  {dt * 1000:9.1f} ms  {lab}")
    print(f"  {build_before * 1000:9.1f} ms  writing the files + building the scene")
    worst_before = max([dt for _, dt in before] + [build_before])
    print(f"after: {len(polls)} polls over {total:.1f} s of work on the worker thread")
    print(f"  poll median {statistics.median(polls) * 1e6:.1f} µs, max {max(polls) * 1000:.2f} ms")
    print(
        f"  {build_after * 1000:9.1f} ms  building the scene (main thread; "
        f"{build_after_cpu * 1000:.1f} ms of its CPU)"
    )
    worst_after = max(max(polls), build_after)
    print(
        f"longest main-thread block: {worst_before * 1000:.0f} ms → {worst_after * 1000:.0f} ms "
        f"({worst_before / worst_after:.0f}× shorter)"
    )
    _record(
        "main_thread_block",
        image=str(args.image.name),
        before_ms=round(worst_before * 1000, 1),
        after_ms=round(worst_after * 1000, 1),
        build_after_cpu_ms=round(build_after_cpu * 1000, 1),
        poll_max_ms=round(max(polls) * 1000, 3),
        worker_s=round(total, 2),
    )
    import shutil

    for folder in (first_out, s_out):
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def cancel_latency(image: Path, resolutions: list[int], tries: int) -> int:
    import os
    import random
    import tempfile

    import bpy

    import image2lego
    from image2lego.blender import jobs
    from image2lego.blender import scene as lego_scene
    from image2lego.blender.background import StepJob

    image2lego.register()
    rng = random.Random(0)
    print("| resolution | whole run | ESC → UI free (cancel()) | ESC → worker stopped | "
          "median | scene / folder unchanged |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    bad = 0
    for r in resolutions:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        s = bpy.context.scene.image2lego
        s.image_path = str(image)
        s.resolution = str(r)
        out = Path(tempfile.mkdtemp(prefix="i2l-bench-esc-"))
        s.output_dir = str(out)
        # full runs (worker only) for the run's length: the shorter of two (the first one
        # also loads the weights), so ESC lands inside a run
        whole = float("inf")
        for _ in range(2 if r < 64 else 1):
            steps, out_dir = jobs.image_steps(bpy.context)
            t0 = time.perf_counter()
            job = StepJob(jobs.prepare_steps(steps, None, "M")).start()
            job.wait()
            whole = min(whole, time.perf_counter() - t0)
            if job.error is not None:
                print(f"{r}³: the run failed: {job.error}", file=sys.stderr)
                return 1
        ui, stopped, same, late = [], [], True, 0
        while len(stopped) < tries and late < tries:
            before = sorted(c.name for c in bpy.data.collections), sorted(os.listdir(out))
            # as the operator does (operators/build.py): 64³ and up in a child process
            steps, out_dir = jobs.image_steps(bpy.context, child=True)
            job = StepJob(jobs.prepare_steps(steps, out_dir, "M"))
            job.on_cancel = getattr(steps, "kill", None)
            job.start()
            time.sleep(rng.uniform(0.02, 0.9) * whole)
            if job._done.is_set():  # finished before the "ESC": not a cancel, try again
                job.wait()
                late += 1
                for name in set(os.listdir(out)) - set(before[1]):
                    os.remove(out / name)
                continue
            t = time.perf_counter()
            job.cancel()
            ui.append(time.perf_counter() - t)
            state = job.poll()[0]  # what the modal handler sees next
            job.wait()
            stopped.append(time.perf_counter() - t)
            # a cancelled job never reaches jobs.finish; the files go only after the last step
            after = sorted(c.name for c in bpy.data.collections), sorted(os.listdir(out))
            same &= state == "cancelled" and after == before
            same &= lego_scene.find_model_collection(bpy.context) is None
        if not stopped:
            print(f"| {r}³ | {whole:.1f} s | every ESC came after the run's end |")
            continue
        bad += not same
        print(
            f"| {r}³ | {whole:.1f} s | max {max(ui) * 1e6:.0f} µs | "
            f"max {max(stopped) * 1000:.0f} ms | {statistics.median(stopped) * 1000:.0f} ms | "
            f"{'yes' if same else 'NO'} ({len(stopped)} tries) |",
            flush=True,
        )
        _record(
            "esc_cancel",
            resolution=r,
            child_process=hasattr(steps, "kill"),
            whole_run_s=round(whole, 2),
            cancel_call_max_us=round(max(ui) * 1e6, 1),
            worker_stopped_ms=[round(x * 1000, 1) for x in stopped],
            unchanged=bool(same),
        )
        import shutil

        shutil.rmtree(out, ignore_errors=True)
    return 1 if bad else 0


def scene_sizes() -> int:
    import bpy

    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_instructions import demo_voxels

    from image2lego.blender import scene as lego_scene
    from image2lego.lego.convert import ConvertOptions, voxels_to_bricks

    print("wall ms (main-thread CPU ms in brackets: what an idle machine's wall time would be)")
    print("| voxels | bricks | objects | geometry nodes (default) |")
    print("|---|---|---|---|")
    for n in (16, 24, 40, 56):
        grid, rgb = demo_voxels(n)
        model = voxels_to_bricks(grid, rgb, ConvertOptions(color_mode="photo", k=3))
        stats = lego_scene.compute_stats(model)
        row = []
        for method in ("objects", "geonodes"):
            ts, cpu = [], []
            for _ in range(3):
                bpy.ops.wm.read_factory_settings(use_empty=True)
                t, c = time.perf_counter(), time.thread_time()
                lego_scene.build_model(bpy.context, model, name="M", method=method, stats=stats)
                ts.append(time.perf_counter() - t)
                cpu.append(time.thread_time() - c)
            row.append(
                f"{statistics.median(ts) * 1000:.0f} ms ({statistics.median(cpu) * 1000:.0f})"
            )
        print(f"| {n}³ | {len(model.bricks)} | {row[0]} | {row[1]} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

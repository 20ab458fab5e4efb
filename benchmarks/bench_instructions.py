"""Benchmark: instruction renders (s per step), booklet build, build animation keying.

Wall-clock times depend on what else the machine runs; the ``cpu`` columns (this process's
CPU time, all threads) are the load-independent figures.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_instructions.py [--size N] [--res WxH]
[--demo]``. Per-step time is the median over the steps of one booklet (render of the step,
ID pass, compose, PNG write), the booklet time is composing every page into HTML + PDF;
``--demo`` also times the whole CLI demo (``examples/chair.png`` → every output, a fresh
process). Prints a table and writes ``benchmarks/results/instructions.json``. Also leaves a
sample instruction page at ``/tmp/image2lego_instruction_page.png`` (the README screenshot source).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def demo_voxels(n: int):
    """A coloured dome on a base: red base, yellow body, blue cap (a readable test model)."""
    x, y, z = np.meshgrid(*(np.arange(n),) * 3, indexing="ij")
    c = (n - 1) / 2
    dome = ((x - c) ** 2 + (y - c) ** 2 + (z * 1.2) ** 2) <= (0.55 * n) ** 2
    base = z < max(1, n // 8)
    grid = dome | (base & (np.abs(x - c) < 0.45 * n) & (np.abs(y - c) < 0.45 * n))
    rgb = np.zeros((*grid.shape, 3))
    frac = z / max(1, n - 1)
    rgb[frac < 0.15] = (0.8, 0.1, 0.1)
    rgb[(frac >= 0.15) & (frac < 0.45)] = (0.95, 0.8, 0.1)
    rgb[frac >= 0.45] = (0.1, 0.3, 0.8)
    return grid, rgb


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=12)
    ap.add_argument("--res", default="800x600")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--demo", action="store_true", help="also time the whole CLI demo")
    args = ap.parse_args()
    w, h = (int(v) for v in args.res.split("x"))

    import bpy

    from image2lego.blender import animation, instructions
    from image2lego.blender import scene as lego_scene
    from image2lego.lego.convert import ConvertOptions, voxels_to_bricks

    grid, rgb = demo_voxels(args.size)
    model = voxels_to_bricks(grid, rgb, ConvertOptions(color_mode="photo", k=3))
    rows = []
    for method in ("objects", "geonodes"):
        per_step, cpu_step, booklet, cpu_booklet, anim = [], [], [], [], []
        step_median, step_cpu = [], []
        for _ in range(args.repeats):
            bpy.ops.wm.read_factory_settings(use_empty=True)
            coll = lego_scene.build_model(bpy.context, model, name="Dome", method=method)
            out = Path(tempfile.mkdtemp(prefix="i2l-bench-"))
            try:
                res = instructions.run(
                    instructions.render_instructions(bpy.context, coll, out, (w, h), "Dome")
                )
                per_step.append(res.timings["render_s_per_step"])
                step_median.append(statistics.median(res.timings["step_times"]))
                step_cpu.append(statistics.median(res.timings["step_cpu_times"]))
                cpu_step.append(res.timings["render_cpu_s"] / res.timings["steps"])
                booklet.append(res.timings["booklet_s"])
                cpu_booklet.append(res.timings["booklet_cpu_s"])
                if (
                    method == "objects"
                    and not Path("/tmp/image2lego_instruction_page.png").exists()
                ):
                    from image2lego.core import booklet as bk

                    k = min(2, len(res.step_images) - 1)
                    parts = instructions.parts_by_step(coll)
                    page = bk.compose_step_page(
                        k + 1, len(res.step_images), res.step_images[k], parts[k],
                        res.thumbnails, title="Dome", page_no=k + 2,
                        n_pages=len(res.step_images) + 2, crop=bk.common_crop(res.step_images),
                    )  # fmt: skip
                    page.save("/tmp/image2lego_instruction_page.png")
                    shutil.copy(out / "instructions.pdf", "/tmp/image2lego_instructions.pdf")
            finally:
                shutil.rmtree(out, ignore_errors=True)
            t = time.perf_counter()
            animation.animate_build(bpy.context, coll)
            anim.append(time.perf_counter() - t)
        rows.append(
            {
                "method": method,
                "bricks": len(model.bricks),
                "steps": model.n_steps(),
                "resolution": [w, h],
                "step_s_median": statistics.median(step_median),
                "step_cpu_s_median": statistics.median(step_cpu),
                "load_average": os.getloadavg()[0],
                "render_s_per_step_median": statistics.median(per_step),
                "render_cpu_s_per_step_median": statistics.median(cpu_step),
                "booklet_s_median": statistics.median(booklet),
                "booklet_cpu_s_median": statistics.median(cpu_booklet),
                "animate_s_median": statistics.median(anim),
            }
        )
    print(
        f"{'method':10} {'bricks':>7} {'steps':>6} {'step s':>7} {'step cpu':>8} {'s/step':>8} "
        f"{'cpu s/step':>10} "
        f"{'booklet s':>10} {'cpu s':>6} {'anim s':>8}"
    )
    for r in rows:
        print(
            f"{r['method']:10} {r['bricks']:7d} {r['steps']:6d} {r['step_s_median']:7.2f} "
            f"{r['step_cpu_s_median']:8.2f} "
            f"{r['render_s_per_step_median']:8.2f} {r['render_cpu_s_per_step_median']:10.2f} "
            f"{r['booklet_s_median']:10.2f} {r['booklet_cpu_s_median']:6.2f} "
            f"{r['animate_s_median']:8.3f}"
        )
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f}")
    result = {"booklets": rows}
    if args.demo:
        result["demo"] = time_demo()
        d = result["demo"]
        print(f"demo (chair.png -> every output): {d['wall_s']:.1f} s wall, {d['cpu_s']:.1f} s CPU")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "instructions.json").write_text(json.dumps(result, indent=2) + "\n")


def time_demo() -> dict:
    """Wall and CPU time of ``python -m image2lego examples/chair.png`` in a fresh process."""
    import os
    import resource
    import subprocess
    import sys

    root = HERE.parent
    out = Path(tempfile.mkdtemp(prefix="i2l-demo-"))
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "image2lego", str(root / "examples" / "chair.png"),
             "-o", str(out), "--color-mode", "photo", "-q"],
            capture_output=True, text=True, env=os.environ.copy(), check=False,
        )  # fmt: skip
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(f"demo failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
        report = json.loads((out / "report.json").read_text())
        return {
            "wall_s": wall,
            "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "bricks": report["bricks"],
            "steps": report["steps"],
        }
    finally:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Photo → 2D mosaic (lego/mosaic.py): colour error and time per size, 16² to 96² studs.

On scikit-image's ``astronaut()`` (512², NASA, public domain), for each size, plain nearest
colour and Floyd–Steinberg dithering: the median time of ``make_mosaic`` (resize, k-means in
CIELAB, CIEDE2000 matching, the brick model), the mean CIEDE2000 between the photo's cells and
the LEGO colours (ΔE; "ΔE blur1" compares both after a 3×3 box filter, what the eye sees from
a distance, where dithering helps) and the parts count; then the time to write the LDraw file
and the picture; the standing wall (bricks through the voxel converter) at 16-48. Wall time
depends on what else runs (the load average is printed); CPU time is reported too.

Run: ``python benchmarks/bench_mosaic.py [--repeats 3] [-k 8]``; writes
``benchmarks/results/bench_mosaic.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from image2lego.lego import ldraw, mosaic

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "bench_mosaic.json"
SIZES = (16, 32, 48, 64, 96)
STANDING_SIZES = (16, 32, 48)  # the standing wall goes through the voxel converter: slower
FMT = "{:>7} {:>8} {:>6} {:>6} {:>8} {:>7} {:>6} {:>8} {:>6} {:>6} {:>9}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("-k", type=int, default=8)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    from skimage import data

    photo = data.astronaut()
    rows = []
    print(f"load average {os.getloadavg()[0]:.1f}; astronaut() {photo.shape[1]}x{photo.shape[0]}")
    head = ("studs", "", "dither", "ΔE", "ΔE blur1", "colours", "parts", "mosaic s", "cpu s",
            "ldr s", "picture s")  # fmt: skip
    print(FMT.format(*head))
    cases = [(s, d, "lying") for s in SIZES for d in (False, True)]
    cases += [(s, False, "standing") for s in STANDING_SIZES]
    for size, dither, orientation in cases:
        opt = mosaic.MosaicOptions(size, size, args.k, dither=dither, orientation=orientation)
        walls, cpus = [], []
        for _ in range(args.repeats):
            t, c = time.perf_counter(), time.process_time()
            res = mosaic.make_mosaic(photo, opt)
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            ldraw.write_ldr(res.model, Path(tmp) / "m.ldr", title="bench")
            t_ldr = time.perf_counter() - t
        t = time.perf_counter()
        mosaic.render(res.codes, opt.element, 16, opt.base_color)
        t_pic = time.perf_counter() - t
        row = {
            "studs": size,
            "orientation": orientation,
            "dither": dither,
            "delta_e": res.stats["delta_e"],
            "delta_e_blur1": res.stats["delta_e_blur1"],
            "colors": res.stats["colors"],
            "parts": res.stats["bricks"],
            "mosaic_s": round(statistics.median(walls), 3),
            "cpu_s": round(statistics.median(cpus), 3),
            "ldr_s": round(t_ldr, 3),
            "picture_s": round(t_pic, 3),
        }
        rows.append(row)
        cells = [f"{size}x{size}", orientation, str(dither)]
        cells += [f"{row[k]:.2f}" for k in ("delta_e", "delta_e_blur1")]
        cells += [str(row["colors"]), str(row["parts"])]
        cells += [f"{row[k]:.3f}" for k in ("mosaic_s", "cpu_s", "ldr_s", "picture_s")]
        print(FMT.format(*cells), flush=True)
    out = {"k": args.k, "repeats": args.repeats, "load_average": os.getloadavg()[0], "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

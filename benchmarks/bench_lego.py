"""Voxels → bricks: speed, part counts and connectivity (issue 3's benchmark).

Rows: a 32³ chair from the shared data (ModelNet40, padded 30→32, Z up), a 64³ solid
sphere, a 128³ solid sphere and a 128³ solid block. For each: median conversion time of
``voxels_to_bricks`` (default options: proportional scale, mixed bricks and plates, filled),
bricks, voxels per brick, connected components, bricks not connected to the ground
("orphans"), and the same layered cells merged by a plain per-layer greedy (raster order,
the largest part that fits at each free cell, fixed orientation) — the ColouredVoxels2LDR
approach the paper adapted — with its brick count and components.

Targets: 64³ sphere < 1 s and 128³ < 10 s on the 2-core dev machine; fewer bricks than
the plain greedy; one component for every connected input. Wall time depends on what else
runs (the load average is printed); CPU time (``time.process_time``) is reported too.

Run: ``python benchmarks/bench_lego.py [--repeats 3] [--quick]``; writes
``benchmarks/results/bench_lego.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from image2lego.lego import merge
from image2lego.lego.connectivity import analyze
from image2lego.lego.convert import ConvertOptions, voxels_to_bricks
from image2lego.lego.voxels import fill_hollow, to_layers

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "bench_lego.json"
CHAIR_FILE = "modelnet40_chair_train_vox30.npz"
CHAIR_ROTATION = 4  # the rotation whose backrest is at +Y (see core/data.py)


def data_dir() -> Path | None:
    env = os.environ.get("IMAGE2LEGO_DATA")
    p = Path(env) if env else REPO.parent / "shared" / "data"
    return p if p.is_dir() else None


def sphere(n: int) -> np.ndarray:
    c = (n - 1) / 2
    g = np.indices((n, n, n), dtype=np.float32)
    return ((g - c) ** 2).sum(0) <= (n / 2) ** 2


def up_axis(g: np.ndarray) -> int:
    """The axis along which the shape rests: its lowest occupied slice is the sparsest
    relative to its fullest slice (chair legs below the seat), compared with the other axes'
    lowest slices. Returns the axis index."""
    scores = []
    for a in range(3):
        prof = g.sum(axis=tuple(i for i in range(3) if i != a))
        occ = np.flatnonzero(prof)
        scores.append(prof[occ[0]] / prof.max())
    return int(np.argmin(scores))


def load_chair(index: int = 0) -> tuple[np.ndarray, str] | None:
    d = data_dir()
    if d is None or not (d / CHAIR_FILE).is_file():
        return None
    z = np.load(d / CHAIR_FILE)
    n = int(z["shape"][-1])
    rot = list(z["rotations"]).index(CHAIR_ROTATION) if "rotations" in z else 0
    packed = z["voxels"][index, rot]
    g = np.unpackbits(packed, axis=-1)[..., :n].astype(bool)
    g = np.pad(g, 1)  # 30 -> 32
    a = up_axis(g)
    if a != 2:  # bring the up axis to Z, keeping a right-handed frame
        g = np.rot90(g, 1, axes=(a, 2)) if a == 0 else np.rot90(g, -1, axes=(a, 2))
    name = str(z["names"][index]) if "names" in z else str(index)
    return np.ascontiguousarray(g), f"chair {name} rot {CHAIR_ROTATION}, up axis {a}"


def greedy_count(grid: np.ndarray, opts: ConvertOptions) -> tuple[int, int]:
    """Plain per-layer greedy on the same layered cells: (bricks, components)."""
    solid = fill_hollow(grid)
    nz = np.nonzero(solid)
    solid = solid[tuple(slice(a.min(), a.max() + 1) for a in nz)]
    layers = to_layers(solid, opts.scale, opts.brick_types)
    cells = np.where(layers.occ, opts.color, -1).astype(np.int64)
    asm = merge.Assembly(cells.shape)
    for z, h, c2 in merge.plan_units(cells, opts.brick_types):
        asm.add(merge.greedy_tiling(c2, h), z, h)
    n, _ = asm.components()
    return asm.n_alive, n


def chairs_summary(indices) -> dict:
    """Ours vs plain greedy over several chairs: total bricks and how many are connected."""
    out = {"indices": list(indices), "bricks": 0, "connected": 0, "greedy_bricks": 0}
    out["greedy_connected"] = 0
    out["greedy_components"] = []
    for i in indices:
        g, _ = load_chair(i)
        m = voxels_to_bricks(g)
        gb, gc = greedy_count(g, ConvertOptions())
        out["bricks"] += len(m)
        out["connected"] += int(m.meta["connected"])
        out["greedy_bricks"] += gb
        out["greedy_connected"] += int(gc == 1)
        out["greedy_components"].append(gc)
    out["n"] = len(out["indices"])
    return out


def run_row(name: str, grid: np.ndarray, repeats: int, note: str = "") -> dict:
    opts = ConvertOptions()
    times, cpu = [], []
    model = None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        model = voxels_to_bricks(grid, options=opts)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    assert model is not None
    rep = analyze(model, articulation=False)
    n_vox = int(grid.sum())
    n_cell_comp = int(ndimage.label(grid)[1])
    t = time.perf_counter()
    g_bricks, g_comp = greedy_count(grid, opts)
    t_greedy = time.perf_counter() - t
    return {
        "name": name,
        "note": note,
        "shape": list(grid.shape),
        "voxels": n_vox,
        "voxel_components": n_cell_comp,
        "median_s": statistics.median(times),
        "times_s": times,
        "median_cpu_s": statistics.median(cpu),
        "bricks": len(model),
        "voxels_per_brick": n_vox / len(model),
        "components": rep.n_components,
        "orphans": len(rep.ungrounded),
        "connected": bool(model.meta["connected"]),
        "remerge_fixes": model.meta["connectivity"]["remerge_fixes"],
        "greedy_bricks": g_bricks,
        "greedy_components": g_comp,
        "greedy_s": t_greedy,
        "fewer_than_greedy": len(model) < g_bricks,
        "warnings": model.meta["warnings"],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="skip the 128³ rows")
    args = ap.parse_args(argv)

    rows = []
    chair = load_chair()
    if chair is None:
        print(f"chair: skipped ({CHAIR_FILE} not found; set IMAGE2LEGO_DATA)")
    else:
        rows.append(run_row("chair 32³", chair[0], args.repeats, chair[1]))
    rows.append(run_row("sphere 64³", sphere(64), args.repeats))
    if not args.quick:
        rows.append(run_row("sphere 128³", sphere(128), args.repeats))
        rows.append(run_row("block 128³", np.ones((128, 128, 128), dtype=bool), args.repeats))

    chairs = None
    if chair is not None:
        chairs = chairs_summary(range(0, 40, 4))
        print(
            f"10 chairs: ours {chairs['bricks']} bricks, {chairs['connected']}/{chairs['n']} "
            f"connected; plain greedy {chairs['greedy_bricks']} bricks, "
            f"{chairs['greedy_connected']}/{chairs['n']} connected "
            f"(components {chairs['greedy_components']})"
        )

    hdr = (
        f"{'grid':<12} {'voxels':>8} {'median s':>9} {'cpu s':>6} {'bricks':>7} {'vox/brick':>9} "
        f"{'comps':>5} {'orphans':>7} {'greedy':>7} {'greedy comps':>12}"
    )
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(
            f"{r['name']:<12} {r['voxels']:>8} {r['median_s']:>9.2f} {r['median_cpu_s']:>6.2f} "
            f"{r['bricks']:>7} "
            f"{r['voxels_per_brick']:>9.2f} {r['components']:>5} {r['orphans']:>7} "
            f"{r['greedy_bricks']:>7} {r['greedy_components']:>12}"
        )
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"load average during run: {load}")
    out = {
        "benchmark": "bench_lego",
        "options": "ConvertOptions() defaults: proportional, mixed, fill",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg": load},
        "repeats": args.repeats,
        "rows": rows,
        "chairs_10": chairs,
        "targets": {
            "sphere_64_under_1s": next(
                (r["median_s"] < 1.0 for r in rows if r["name"] == "sphere 64³"), None
            ),
            "all_128_under_10s": all(r["median_s"] < 10 for r in rows if "128" in r["name"])
            if not args.quick
            else None,
            "sphere_64_under_1s_cpu": next(
                (r["median_cpu_s"] < 1.0 for r in rows if r["name"] == "sphere 64³"), None
            ),
            "all_128_under_10s_cpu": all(r["median_cpu_s"] < 10 for r in rows if "128" in r["name"])
            if not args.quick
            else None,
            "fewer_than_greedy": all(r["fewer_than_greedy"] for r in rows),
            "not_more_than_greedy": all(r["bricks"] <= r["greedy_bricks"] for r in rows),
            "connected_inputs_one_component": all(
                r["components"] == 1 for r in rows if r["voxel_components"] == 1
            ),
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=RESULTS.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(out, f, indent=2)
    os.replace(tmp, RESULTS)
    print(f"wrote {RESULTS}")
    print("targets:", out["targets"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

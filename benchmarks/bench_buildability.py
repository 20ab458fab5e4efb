"""Buildability benchmark (issue 17): is every model one piece, stable, stable at every step?

Shapes: the last models of every ShapeNetVox32 class (the validation end of each class's
sorted ids; Y up turned to Z up) and ModelNet40 chairs/airplanes, each coloured like a photo:
a synthetic 128² "photo" (a few smooth colour regions, shading and pixel noise, as a real
photo's texture and JPEG noise give) is projected onto the voxels with the set-pose camera
(``core.colorize.voxel_colors``), then converted with ``color_mode="photo", k=4`` and
repaired, as the pipeline does. Also a 64³ solid sphere (single colour) for the speed target.

Per model: one piece (brick components == 1 where the voxels are one 6-connected piece),
stable finished, stable at every build step (``stability.step_stability``), cells added to
hold it (the converter's bridges and supports under floating pieces, ``lego.join``, plus the
repair's props; % of the model's own cells), wall and CPU time per stage. Targets (issue 17):
100 % one piece, >= 98 % stable finished, >= 95 % stable at every step, median added cells
<= 5 %; a 32³ photo model < 2 s CPU for voxels -> bricks -> repair; 64³ solid sphere < 1 s.

Usage::

    .venv/bin/python benchmarks/bench_buildability.py --per-class 3 \
        --out benchmarks/results/bench_buildability.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from image2lego.lego.convert import ConvertOptions, voxels_to_bricks
from image2lego.lego.merge import surface_cells
from image2lego.lego.repair import repair

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    env = os.environ.get("IMAGE2LEGO_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def _unpack(d) -> np.ndarray:
    v = d["voxels"]
    n = int(d["shape"][-1]) if "shape" in d else 32
    return np.unpackbits(v, axis=-1)[..., :n].astype(bool)


def shapenet(per_class: int) -> list[tuple[str, np.ndarray]]:
    d = np.load(data_dir() / "shapenetvox32_train.npz")
    classes = d["classes"]
    out = []
    vox = d["voxels"]
    for c in sorted(set(classes.tolist())):
        idx = np.nonzero(classes == c)[0][-per_class:]  # the validation end of the sorted ids
        for i in idx:
            g = np.unpackbits(vox[i], axis=-1)[..., :32].astype(bool)
            g = np.transpose(g, (0, 2, 1))  # [x, y(up), z] -> [x, z, y]: Z up
            out.append((f"shapenet/{c}/{str(d['ids'][i])[:8]}", g))
    return out


def modelnet(per_class: int) -> list[tuple[str, np.ndarray]]:
    out = []
    d = np.load(data_dir() / "modelnet40_chair_train_vox30.npz")
    v = _unpack(d)
    for i in range(len(v) - per_class, len(v)):
        out.append((f"modelnet/chair/{str(d['names'][i])}", np.pad(v[i, 0], 1)))
    d = np.load(data_dir() / "modelnet40_airplane_train_vox30.npz")
    v = np.unpackbits(d["voxels"], axis=-1)[..., :30].astype(bool)
    for i in range(len(v) - per_class, len(v)):
        g = np.transpose(np.pad(v[i], 1), (0, 2, 1))  # Y up -> Z up
        out.append((f"modelnet/airplane/{str(d['names'][i])}", g))
    return out


def synthetic_photo(seed: int, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """A photo-like image: 3-5 smooth colour regions, a shading ramp and pixel noise."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 6))
    base = rng.random((n, 3))
    field = ndimage.gaussian_filter(rng.random((n, size, size)), (0, 12, 12))
    region = field.argmax(0)
    img = base[region]
    yy = np.linspace(0.8, 1.1, size)[:, None, None]
    img = img * yy + rng.normal(0, 0.06, img.shape)
    return np.clip(img, 0, 1).astype(np.float32), np.ones((size, size), bool)


def photo_colours(grid: np.ndarray, seed: int) -> np.ndarray:
    from image2lego.core.colorize import voxel_colors

    rgb, mask = synthetic_photo(seed)
    return voxel_colors(grid, rgb, mask)


def _cpu() -> float:
    return time.process_time()


def run_one(name: str, grid: np.ndarray, colors, opts: ConvertOptions, steps: bool) -> dict:
    from image2lego.lego import stability

    n_vox_comp = int(ndimage.label(grid)[1])
    t0, c0 = time.perf_counter(), _cpu()
    model = voxels_to_bricks(grid, colors=colors, options=opts)
    t1, c1 = time.perf_counter(), _cpu()
    fixed, rep = repair(model)
    t2, c2 = time.perf_counter(), _cpu()
    after = rep.stability
    row = {
        "name": name,
        "voxels": int(grid.sum()),
        "voxel_components": n_vox_comp,
        "bricks": len(fixed),
        "components_before": rep.before.n_components,
        "components_after": after.n_components,
        "one_piece": after.n_components == 1,
        "stable": bool(after.stable),
        "recoloured_visible_pct": 100.0
        * model.meta["connectivity"].get("recoloured_visible_cells", 0)
        / max(1, int(surface_cells(model.occupancy()).sum())),
        # cells added to hold it: the converter's bridges and supports plus repair's props
        "added_cells_pct": 100.0
        * len(fixed.meta.get("added_cells") or [])
        / max(1, int(fixed.occupancy().sum()) - len(fixed.meta.get("added_cells") or [])),
        "joined": {
            k: (model.meta.get("join") or {}).get(k, 0)
            for k in ("bridges", "supports", "added_cells")
        },
        "convert_s": t1 - t0,
        "convert_cpu_s": c1 - c0,
        "repair_s": t2 - t1,
        "repair_cpu_s": c2 - c1,
        "total_cpu_s": c2 - c0,
    }
    if steps and hasattr(stability, "step_stability"):
        t3, c3 = time.perf_counter(), _cpu()
        st = stability.step_stability(fixed)
        row["stable_every_step"] = bool(st.stable)
        row["first_unstable_step"] = st.first_unstable
        row["steps_s"] = time.perf_counter() - t3
        row["steps_cpu_s"] = _cpu() - c3
        if not st.stable and hasattr(stability, "stabilise_steps"):
            c4 = _cpu()
            _, st2, moved = stability.stabilise_steps(fixed)
            row["stable_every_step_reordered"] = bool(st2.stable)
            row["reordered_bricks"] = moved
            row["reorder_cpu_s"] = _cpu() - c4
        else:
            row["stable_every_step_reordered"] = bool(st.stable)
    return row


def _median(rows, key):
    v = [r[key] for r in rows if r.get(key) is not None]
    return float(np.median(v)) if v else None


def _share(rows, key):
    v = [bool(r[key]) for r in rows if key in r]
    return 100.0 * sum(v) / len(v) if v else None


def summarise(rows: list[dict]) -> dict:
    conn = [r for r in rows if r["voxel_components"] == 1]
    return {
        "n": len(rows),
        "n_voxels_one_piece": len(conn),
        "one_piece_pct": _share(conn, "one_piece"),
        "one_piece_pct_all": _share(rows, "one_piece"),
        "stable_pct": _share(rows, "stable"),
        "stable_every_step_pct": _share(rows, "stable_every_step"),
        "stable_every_step_reordered_pct": _share(rows, "stable_every_step_reordered"),
        "median_added_cells_pct": _median(rows, "added_cells_pct"),
        "median_recoloured_visible_pct": _median(rows, "recoloured_visible_pct"),
        "median_convert_cpu_s": _median(rows, "convert_cpu_s"),
        "median_repair_cpu_s": _median(rows, "repair_cpu_s"),
        "median_total_cpu_s": _median(rows, "total_cpu_s"),
        "median_total_wall_s": float(np.median([r["convert_s"] + r["repair_s"] for r in rows])),
        "median_steps_cpu_s": _median(rows, "steps_cpu_s"),
    }


def sphere(n: int) -> np.ndarray:
    c = (n - 1) / 2
    x, y, z = np.ogrid[:n, :n, :n]
    return (x - c) ** 2 + (y - c) ** 2 + (z - c) ** 2 <= (n / 2) ** 2


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=2)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--no-steps", action="store_true", help="skip the every-step analysis")
    ap.add_argument("--single", action="store_true", help="one colour instead of photo colours")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    shapes = shapenet(a.per_class) + modelnet(a.per_class)
    rows = []
    for i, (name, g) in enumerate(shapes):
        if a.single:
            colors, opts = None, ConvertOptions()
        else:
            colors, opts = photo_colours(g, i), ConvertOptions(color_mode="photo", k=a.k)
        r = run_one(name, g, colors, opts, not a.no_steps)
        rows.append(r)
        print(
            f"{name:40s} vox={r['voxels']:5d} comp {r['components_before']}->"
            f"{r['components_after']} stable={r['stable']} step={r.get('stable_every_step')} "
            f"add={r['added_cells_pct']:.1f}% cpu={r['convert_cpu_s']:.2f}+{r['repair_cpu_s']:.2f}",
            flush=True,
        )
    summary = summarise(rows)
    t0, c0 = time.perf_counter(), _cpu()
    m = voxels_to_bricks(sphere(64))
    sph = {"convert_s": time.perf_counter() - t0, "convert_cpu_s": _cpu() - c0}
    # as the pipeline does: the LP only where the model is within the repair limit or no
    # brick overhangs (a 10,410-brick sphere overhangs: one LP over all of it runs for many
    # minutes)
    from image2lego.core.pipeline import REPAIR_MAX_BRICKS
    from image2lego.lego.stability import fully_supported

    rep = None
    if len(m) <= REPAIR_MAX_BRICKS or fully_supported(m):
        _, rep = repair(m)
    sph.update(
        repair_cpu_s=_cpu() - c0 - sph["convert_cpu_s"],
        total_s=time.perf_counter() - t0,
        total_cpu_s=_cpu() - c0,
        bricks=len(m),
        stable=None if rep is None else bool(rep.stable),
    )
    summary["sphere64"] = sph
    print(json.dumps(summary, indent=1))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = a.out.with_suffix(".tmp")
        tmp.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
        tmp.replace(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Stability analysis and repair at 64³ (issues #17 item 4, #22 item 2).

Models: the example chair photo predicted at 64³ (one colour and ``--color-mode photo``), three
ModelNet10 beds at 64³ (``modelnet10_bed_vox64.npz``) and ShapeNetVox32 models of six classes
upsampled 2x to 64³ (``shapenetvox32_train.npz``, brought to Z up). Each goes through
``voxels_to_bricks`` (default options) and ``analyze_stability`` (default objective, its default
budget); the photo chairs also through ``repair`` as the pipeline runs it. CPU seconds
(``time.process_time``), medians of ``--repeat`` runs. Target: analysis < 10 s CPU, repair well
under a minute. Usage::

    PYTHONPATH=... python benchmarks/bench_stability64.py [--repeat 1] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from image2lego.lego.convert import ConvertOptions, voxels_to_bricks
from image2lego.lego.repair import repair
from image2lego.lego.stability import ANALYSIS_BUDGET_S, StabilityBudgetError, analyze_stability

REPO = Path(__file__).resolve().parents[1]
SHAPENET = (("chair", 2), ("table", 2), ("airplane", 2), ("sofa", 2), ("lamp", 2), ("bench", 2))


def data_dir() -> Path:
    env = os.environ.get("IMAGE2LEGO_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def models() -> list[tuple[str, object]]:
    from image2lego.core.pipeline import PipelineOptions, image_to_lego_steps, run
    from image2lego.training.data import shapenet_to_canonical

    out = []
    for mode in ("single", "photo"):
        opts = PipelineOptions(resolution=64, repair=False, convert=ConvertOptions(color_mode=mode))
        res = run(image_to_lego_steps(REPO / "examples" / "chair.png", opts))
        out.append((f"photo chair 64³ ({mode})", res.model))
    d = np.load(data_dir() / "modelnet10_bed_vox64.npz")
    for i in (0, 100, 300):
        g = np.unpackbits(d["voxels"][i], axis=-1)[..., :64].astype(bool)  # axis 2 is up
        out.append((f"bed {i} 64³", voxels_to_bricks(g)))
    d = np.load(data_dir() / "shapenetvox32_train.npz")
    classes = np.asarray(d["classes"])
    for name, n in SHAPENET:
        ix = np.flatnonzero(classes == name)
        for j in ix[[3, len(ix) // 2]][:n]:
            g = shapenet_to_canonical(np.unpackbits(d["voxels"][j], axis=-1)[..., :32].astype(bool))
            g = g.repeat(2, 0).repeat(2, 1).repeat(2, 2)
            out.append((f"ShapeNet {name} {j} 32³ x2", voxels_to_bricks(g)))
    return out


def analyse(model, repeat: int) -> dict:
    cpu, wall, rep = [], [], None
    for _ in range(repeat):
        c, t = time.process_time(), time.perf_counter()
        try:
            rep = analyze_stability(model)
        except StabilityBudgetError as exc:
            return {"outcome": f"budget: {exc}", "cpu_s": time.process_time() - c}
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - t)
    assert rep is not None
    return {
        "outcome": "stable" if rep.stable else "not stable",
        "overloaded": len(rep.overloaded),
        "unsupported": len(rep.unsupported),
        "max_stress": float(rep.max_stress) if np.isfinite(rep.max_stress) else None,
        "status": rep.status,
        "cpu_s": statistics.median(cpu),
        "wall_s": statistics.median(wall),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/bench_stability64.json")
    ap.add_argument("--no-repair", action="store_true")
    a = ap.parse_args(argv)
    rows = []
    for name, model in models():
        row = {"model": name, "bricks": len(model), **analyse(model, a.repeat)}
        if name.startswith("photo") and not a.no_repair:
            c = time.process_time()
            try:
                fixed, rep = repair(model, options=None)
                row["repair"] = {
                    "cpu_s": time.process_time() - c,
                    "stable_after": rep.stable,
                    "overloaded_after": rep.after.n_overloaded,
                    "bricks_after": len(fixed),
                    "props": rep.reinforcement_bricks,
                }
            except StabilityBudgetError as exc:
                row["repair"] = {"cpu_s": time.process_time() - c, "outcome": f"budget: {exc}"}
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {
        "what": "analyze_stability (default objective) of 64³ models; repair of the photo chairs",
        "analysis_budget_s": ANALYSIS_BUDGET_S,
        "load_average": os.getloadavg()[0],
        "repeat": a.repeat,
        "targets": {"analysis_cpu_s": 10.0, "repair_cpu_s": 60.0},
        "models": rows,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, a.out)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

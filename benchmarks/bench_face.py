"""Face → LEGO (core/face.py): its two landmark paths side by side, time per stage.

On scikit-image's ``astronaut()`` (512², NASA, public domain), for each landmark path that can
load here: mediapipe 0.10.21's face mesh (``requirements-face.lock``, in the project venv) and
mediapipe 1.x's Tasks face landmarker with its model (``requirements-face-tasks.lock``, from
``$IMAGE2LEGO_CACHE/wheels/face-tasks-site`` as tools/bootstrap.sh installs it, first on
``PYTHONPATH``). Each runs in its own fresh interpreter (both are the ``mediapipe`` package):
the median CPU and wall time of ``detect_faces`` over ``--repeats`` runs (each creates the
landmarker, so model loading is included), then one whole bust at ``--size`` studs: voxels,
bricks, colours, stability and the seconds per stage (landmarks, grid, bricks). Then how far
the Tasks landmarks are from the face mesh's (pixels, x/y; depth after centring). Wall time
depends on what else runs (the load average is printed); CPU time counts every thread.

Run: ``python benchmarks/bench_face.py [--repeats 5] [--size 16]``; writes
``benchmarks/results/bench_face.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "bench_face.json"
CACHE = Path(os.environ.get("IMAGE2LEGO_CACHE", Path.home() / ".cache" / "image2lego"))
TASKS_SITE = Path(os.environ.get("IMAGE2LEGO_FACE_TASKS_SITE", CACHE / "wheels/face-tasks-site"))


def child(repeats: int, size: int, landmarks_out: str) -> dict:
    """Run in a fresh interpreter: this interpreter's landmark path, timed."""
    from skimage import data

    from image2lego.core import face as F
    from image2lego.core.pipeline import run

    out: dict = {"backend": F.face_backend(), "reason": F.mediapipe_unavailable_reason()}
    if out["backend"] is None:
        return out
    rgb = data.astronaut()
    walls, cpus = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        faces = F.detect_faces(rgb)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    np.save(landmarks_out, faces[0].landmarks)
    out |= {
        "faces": len(faces),
        "face_px": round(faces[0].width, 1),
        "landmarks_wall_s": round(statistics.median(walls), 3),
        "landmarks_cpu_s": round(statistics.median(cpus), 3),
    }
    c = time.process_time()
    res = run(F.face_to_lego_steps(rgb, F.FaceOptions(size=size)))
    out |= {
        "studs": size,
        "voxels": int(res.grid.voxels.sum()),
        "grid": list(res.grid.voxels.shape),
        "bricks": len(res.model.bricks),
        "colors": res.grid.codes,
        "stable": bool(res.stability.stable),
        "components": int(res.stability.after.n_components),
        "stage_wall_s": res.seconds,
        "bust_cpu_s": round(time.process_time() - c, 2),
    }
    return out


def _run_child(args, pythonpath: list[str], landmarks: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*pythonpath, *sys.path])
    cmd = [sys.executable, __file__, "--child", "--repeats", str(args.repeats)]
    cmd += ["--size", str(args.size), "--landmarks", str(landmarks)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"the benchmark child failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--landmarks", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(args.repeats, args.size, args.landmarks)))
        return 0
    load = os.getloadavg()[0]
    print(f"load average {load:.1f}; astronaut() 512x512, {args.repeats} repeats")
    rows, lms = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = [("project venv", [])]
        if TASKS_SITE.is_dir():
            paths.append((str(TASKS_SITE), [str(TASKS_SITE)]))
        for where, pp in paths:
            lm = Path(tmp) / f"lm{len(rows)}.npy"
            row = _run_child(args, pp, lm) | {"where": where}
            rows.append(row)
            if row["backend"] is None:
                print(f"{where}: no landmark path ({row['reason']})")
                continue
            lms[row["backend"]] = np.load(lm)
            print(
                f"{row['backend']:>8}: landmarks {row['landmarks_cpu_s']:.3f} s CPU "
                f"({row['landmarks_wall_s']:.3f} s wall, median); {row['studs']} studs: "
                f"{row['voxels']} voxels {row['grid']} → {row['bricks']} bricks, colours "
                f"{row['colors']}, {'stable' if row['stable'] else 'NOT stable'}, "
                f"{row['components']} piece(s); stages {row['stage_wall_s']} s wall, "
                f"bust {row['bust_cpu_s']} s CPU"
            )
    result: dict = {"load_average": round(load, 2), "repeats": args.repeats, "rows": rows}
    if {"facemesh", "tasks"} <= set(lms):
        a, b = lms["facemesh"], lms["tasks"]
        d = np.linalg.norm(a[:, :2] - b[:, :2], axis=1)
        dz = np.abs((a[:, 2] - a[:, 2].mean()) - (b[:, 2] - b[:, 2].mean()))
        result["tasks_vs_facemesh_px"] = {
            "xy_mean": round(float(d.mean()), 3),
            "xy_median": round(float(np.median(d)), 3),
            "xy_max": round(float(d.max()), 3),
            "z_mean": round(float(dz.mean()), 3),
            "z_max": round(float(dz.max()), 3),
        }
        print(f"Tasks vs face mesh landmarks (px): {result['tasks_vs_facemesh_px']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from image2lego.lego.fileio import atomic_write_text

    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

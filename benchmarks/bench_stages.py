"""Time and memory per stage of one CLI run (issue #22): the real ``python -m image2lego``
main, in this process, with its stage functions wrapped to record wall time, CPU time and
peak RSS (sampled every 5 ms from /proc) while each one runs.

    nice -n 10 python benchmarks/bench_stages.py --solid 128 --repeat 3
    python benchmarks/bench_stages.py --solid 256 --json out.json

Each repeat runs in a fresh process (so the peaks do not carry over) and the table gives the
median of the repeats per stage, with the load average at the start of each run. Nested
stages are indented; a stage's time includes its children's.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PLAIN = ["--no-render", "--no-instructions", "--no-blend", "-q"]

#: (module, attribute) of each stage, outermost first. A function is wrapped wherever a module
#: of the package holds it (``from x import f`` copies included).
STAGES = [
    ("image2lego.core.inputs", "read_voxel_file"),
    ("image2lego.lego.convert", "voxels_to_bricks"),
    ("image2lego.lego.join", "join_pieces"),
    ("image2lego.lego.voxels", "fill_hollow"),
    ("image2lego.lego.voxels", "to_layers"),
    ("image2lego.lego.merge", "cell_components"),
    ("image2lego.lego.convert", "_merge"),
    ("image2lego.lego.steps", "defer_to_support"),
    ("image2lego.lego.stability", "fully_supported"),
    ("image2lego.lego.repair", "repair"),
    ("image2lego.lego.stability", "analyze_stability"),
    ("image2lego.outputs", "summary"),
    ("image2lego.outputs", "write_all"),
    ("image2lego.lego.ldraw", "write_ldr"),
    ("image2lego.lego.ldraw", "write_mpd"),
    ("image2lego.lego.partslist", "write_parts"),
    ("image2lego.lego.connectivity", "analyze"),
    ("image2lego.lego.connectivity", "label_lattice"),
    ("image2lego.lego.connectivity", "lattice_edges"),
]

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


class Sampler:
    """Peak RSS since the last :meth:`push`, sampled by a daemon thread."""

    def __init__(self, period: float = 0.005) -> None:
        self.peak = _rss()
        self.stack: list[int] = []
        self.period = period
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            r = _rss()
            if r > self.peak:
                self.peak = r
            time.sleep(self.period)

    def push(self) -> None:
        self.stack.append(self.peak)
        self.peak = _rss()

    def pop(self) -> int:
        during = max(self.peak, _rss())
        self.peak = max(self.stack.pop(), during)
        return during


def instrument(records: list[dict]) -> None:
    sampler = Sampler()
    path: list[str] = []
    for modname, attr in STAGES:
        mod = importlib.import_module(modname)
        orig = getattr(mod, attr)
        name = f"{modname.rsplit('.', 1)[-1]}.{attr}"

        def wrapper(*a, _orig=orig, _name=name, **kw):
            path.append(_name)
            rec = {"stage": _name, "path": "/".join(path)}
            records.append(rec)
            sampler.push()
            w0, c0 = time.perf_counter(), time.process_time()
            try:
                return _orig(*a, **kw)
            finally:
                rec["wall_s"] = time.perf_counter() - w0
                rec["cpu_s"] = time.process_time() - c0
                rec["peak_rss_mb"] = sampler.pop() / 2**20
                path.pop()

        functools.update_wrapper(wrapper, orig)
        for m in list(sys.modules.values()):
            if getattr(m, "__name__", "").startswith("image2lego"):
                with contextlib.suppress(Exception):
                    if getattr(m, attr, None) is orig:
                        setattr(m, attr, wrapper)


def child(grid_path: str, out: str, extra: list[str]) -> dict:
    """One CLI run with every stage recorded (runs in a fresh process)."""
    import image2lego.cli as cli  # noqa: F401  (imports the modules the stages live in)
    import image2lego.outputs  # noqa: F401

    records: list[dict] = []
    instrument(records)
    load = os.getloadavg()
    w0, c0 = time.perf_counter(), time.process_time()
    rc = cli.main([grid_path, "-o", out, *PLAIN, *extra])
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    bricks = None
    with contextlib.suppress(Exception):
        bricks = json.loads((Path(out) / "report.json").read_text())["bricks"]
    return {
        "rc": rc,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mb": peak,
        "load": load,
        "bricks": bricks,
        "stages": records,
    }


def per_stage(runs: list[dict]) -> list[dict]:
    """Per stage path (``parent/child``): calls, summed wall and CPU time and the peak RSS of
    each run, then the median over the runs; in order of first call."""
    rows: dict[str, dict] = {}
    for i, run in enumerate(runs):
        for rec in run["stages"]:
            row = rows.setdefault(
                rec["path"], {"stage": rec["stage"], "path": rec["path"], "runs": {}}
            )
            r = row["runs"].setdefault(
                i, {"calls": 0, "wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mb": 0.0}
            )
            r["calls"] += 1
            r["wall_s"] += rec["wall_s"]
            r["cpu_s"] += rec["cpu_s"]
            r["peak_rss_mb"] = max(r["peak_rss_mb"], rec["peak_rss_mb"])
    med = statistics.median
    out = []
    for row in rows.values():
        v = list(row["runs"].values())
        out.append(
            {
                "stage": row["stage"],
                "path": row["path"],
                "calls": med(r["calls"] for r in v),
                "wall_s": med(r["wall_s"] for r in v),
                "cpu_s": med(r["cpu_s"] for r in v),
                "peak_rss_mb": med(r["peak_rss_mb"] for r in v),
            }
        )
    return out


def table(runs: list[dict]) -> str:
    loads = ", ".join(f"{r['load'][0]:.1f}" for r in runs)
    med = statistics.median
    lines = [
        f"{len(runs)} run(s); load average at each start: {loads}; bricks {runs[0]['bricks']}",
        f"whole run: wall {med(r['wall_s'] for r in runs):.1f} s, "
        f"CPU {med(r['cpu_s'] for r in runs):.1f} s, "
        f"peak RSS {med(r['peak_rss_mb'] for r in runs):.0f} MB (medians)",
        "",
        "| stage | calls | wall s | CPU s | peak RSS MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for a in per_stage(runs):
        ind = "&nbsp;&nbsp;" * a["path"].count("/")
        lines.append(
            f"| {ind}{a['stage']} | {a['calls']:g} | {a['wall_s']:.2f} | {a['cpu_s']:.2f} "
            f"| {a['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--solid", type=int, help="a full N³ grid")
    ap.add_argument("--grid", type=Path, help="a .npy/.npz voxel file instead")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", type=Path, help="write every run's records here")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("extra", nargs="*", help="more CLI options (after --)")
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.child[0], a.child[1], a.extra)))
        return 0
    with tempfile.TemporaryDirectory(prefix="i2l-stages-") as tmp:
        if a.grid is not None:
            path = str(a.grid)
        else:
            if not a.solid:
                ap.error("give --solid N or --grid FILE")
            path = str(Path(tmp) / f"full{a.solid}.npy")
            np.save(path, np.ones((a.solid,) * 3, dtype=bool))
        runs = []
        for i in range(a.repeat):
            cmd = [sys.executable, __file__, "--child", path, str(Path(tmp) / f"o{i}"), "--"]
            p = subprocess.run([*cmd, *a.extra], capture_output=True, text=True, check=False)
            if p.returncode:
                sys.stderr.write(p.stderr)
                return p.returncode
            runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
            print(f"run {i + 1}: {runs[-1]['wall_s']:.1f} s wall", file=sys.stderr)
    if a.json:
        a.json.write_text(json.dumps(runs, indent=1))
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())

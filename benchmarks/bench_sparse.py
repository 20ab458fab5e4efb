"""Dense-with-masks vs sparse octree decoder: time and peak memory per resolution.

The shipped decoder (4³ … 32³) is extended by a 64³ level (8 channels, a full 3³ context
convolution: ``conv3_extra=(64,)``) and a 128³ level (4 channels, no context convolution);
the levels above 32³ are randomly initialised - cost depends on the shape of the computation
and on which cells are live, not on the values. So that the live cells are those of real
shapes, the decoder is *teacher-forced* (``mode="gt"``: the children of occupied target cells
are expanded, as in training) on ModelNet10 beds, stored at 64³ in ``../shared/data``
(128³ targets: each 64³ cell split into 8; solid grids, so the occupied cells still grow ×8
per level - the sparse path's saving is the empty space, ~90 % of a bed's bounding cube).

Each case runs in a fresh process (one torch thread) and reports the median CPU time of the
decoder call (``--repeat`` runs after a warm-up; CPU time, not wall time, because the machine
is shared: other processes' load would swamp the wall-clock figures) and its *peak* memory:
the growth of the process's peak resident set (``VmHWM``, reset just before the call through
``/proc/self/clear_refs``) over what it held before (model and inputs), i.e. the memory the
decode itself needed; ``MALLOC_MMAP_THRESHOLD_=65536`` makes freed tensors leave the resident
set at once, so an earlier peak cannot hide this one (Linux only). Two passes: ``infer`` (no
gradients, ``torch.inference_mode``) and ``train`` (forward + loss + backward).

Run: ``python benchmarks/bench_sparse.py [--beds 4] [--repeat 3]`` (a few minutes on one core);
writes ``benchmarks/results/bench_sparse.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESOLUTIONS = (32, 64, 128)


def build_decoder(max_res: int):
    """The shipped autoencoder's decoder, extended by random 64³/128³ levels."""
    import torch

    from image2lego.core.model import ModelConfig, OctreeAutoencoder
    from image2lego.core.weights import load_weights

    w = load_weights(parts=("autoencoder",))
    base = w.config.to_dict()
    extra = {32: (), 64: (8,), 128: (8, 4)}[max_res]
    base["dec_channels"] = tuple(base["dec_channels"]) + extra
    base["conv3_extra"] = (64,) if max_res >= 64 else ()
    cfg = ModelConfig.from_dict(base)
    torch.manual_seed(0)
    ae = OctreeAutoencoder(cfg)
    st = ae.state_dict()
    st.update(w.autoencoder.state_dict())
    ae.load_state_dict(st)
    return ae.eval(), w


def load_targets(n: int, max_res: int):
    import numpy as np
    import torch

    from image2lego.core.model import head_resolutions
    from image2lego.core.paths import data_dir
    from image2lego.training.data import BED_FILE, _read_source, canonicalize

    grids, _ = _read_source(data_dir() / BED_FILE, limit=n)
    g = np.stack([canonicalize(x, 64) for x in grids])
    t = torch.from_numpy(g).float()[:, None]
    if max_res == 128:
        t = t.repeat_interleave(2, 2).repeat_interleave(2, 3).repeat_interleave(2, 4)
    return t, head_resolutions


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak() -> int:
    """Reset the process's peak resident set (Linux ``clear_refs`` 5); returns the current
    resident set in kB."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kb("VmRSS")


def run_case(path: str, res: int, mode: str, beds: int, repeat: int) -> dict:
    import torch

    from image2lego.core.model import head_resolutions, octree_loss, octree_targets
    from image2lego.core.sparse import SparseOctreeDecoder, sparse_octree_loss

    torch.set_num_threads(1)
    ae, _ = build_decoder(res)
    grid, _ = load_targets(beds, max(res, 64))
    with torch.no_grad():
        g32 = torch.nn.functional.max_pool3d(grid, grid.shape[-1] // 32)
        z = ae.encoder(g32)
    if res < grid.shape[-1]:
        grid = torch.nn.functional.max_pool3d(grid, grid.shape[-1] // res)
    tg = octree_targets(grid, [r for r in head_resolutions(ae.cfg) if r <= res])
    dec = ae.decoder
    sp = SparseOctreeDecoder(dec)
    if mode == "train":
        ae.train()

    def once():
        if mode == "infer":
            with torch.inference_mode():
                out = (dec if path == "dense" else sp)(z, targets=tg, mode="gt", max_res=res)
            return out
        zz = z.detach().requires_grad_(True)
        if path == "dense":
            loss, _ = octree_loss(dec(zz, targets=tg, mode="gt", max_res=res), tg)
        else:
            loss, _ = sparse_octree_loss(sp(zz, targets=tg, mode="gt", max_res=res), tg)
        loss.backward()
        dec.zero_grad(set_to_none=True)
        return loss

    if os.environ.get("MALLOC_MMAP_THRESHOLD_"):  # the memory run: one call, its peak
        before = _reset_peak()
        once()
        return {"peak_mb": round((_status_kb("VmHWM") - before) / 1024, 1)}
    once()  # warm-up
    live = None
    if path == "sparse":
        with torch.inference_mode():
            lv = sp(z, targets=tg, mode="gt", max_res=res)
        live = {str(r): len(v.logits) for r, v in lv.items()}
    times = []
    for _ in range(repeat):
        t = time.process_time()
        once()
        times.append(time.process_time() - t)
    return {
        "path": path,
        "res": res,
        "pass": mode,
        "batch": beds,
        "median_cpu_s": statistics.median(times),
        "cells_dense": beds * sum(r**3 for r in head_resolutions(ae.cfg) if r <= res),
        "cells_live": None if live is None else sum(live.values()),
        "live_per_level": live,
    }


def _run(cmd: list[str], env: dict) -> dict:
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd[-3:])} failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--beds", type=int, default=4, help="batch: the first N beds")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--res", type=int, nargs="*", default=list(RESOLUTIONS))
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/bench_sparse.json"))
    ap.add_argument("--case", nargs=3, metavar=("PATH", "RES", "PASS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.case:
        path, res, mode = args.case
        print(json.dumps(run_case(path, int(res), mode, args.beds, args.repeat)))
        return 0
    rows = []
    for mode in ("infer", "train"):
        for res in args.res:
            for path in ("dense", "sparse"):
                cmd = [sys.executable, __file__, "--beds", str(args.beds), "--repeat",
                       str(args.repeat), "--case", path, str(res), mode]  # fmt: skip
                env = {**os.environ, "OMP_NUM_THREADS": "1"}
                env.pop("MALLOC_MMAP_THRESHOLD_", None)
                row = _run(cmd, env)  # time (ordinary allocator)
                # memory: big blocks mmapped, so freed tensors leave the resident set at once
                # (a separate process: that allocator setting slows the calls down)
                row.update(_run(cmd, {**env, "MALLOC_MMAP_THRESHOLD_": "65536"}))
                rows.append(row)
                ms, mb, live = row["median_cpu_s"] * 1000, row["peak_mb"], row["cells_live"]
                print(f"{mode:5} {res:4}³ {path:6} {ms:9.1f} ms {mb:8.1f} MB  live {live}")
    table = {}
    for r in rows:
        table.setdefault((r["pass"], r["res"]), {})[r["path"]] = r
    ratios = [
        {"pass": m, "res": res, "time_dense_over_sparse": d["dense"]["median_cpu_s"]
         / d["sparse"]["median_cpu_s"], "peak_dense_over_sparse": d["dense"]["peak_mb"]
         / max(d["sparse"]["peak_mb"], 0.1)}
        for (m, res), d in table.items()
    ]  # fmt: skip
    doc = {"rows": rows, "ratios": ratios, "beds": args.beds, "repeat": args.repeat}
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    for r in ratios:
        print(f"{r['pass']:5} {r['res']:4}³  dense/sparse time {r['time_dense_over_sparse']:.2f}x"
              f"  peak memory {r['peak_dense_over_sparse']:.2f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

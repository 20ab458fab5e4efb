"""Real-element benchmark (issue 17 item 5): what keeping to real LEGO elements costs.

The shapes and photo-like colours of ``bench_buildability`` (ShapeNetVox32 validation-end
models of every class, ModelNet40 chairs and airplanes; ``color_mode="photo", k=4``), each
converted three ways: ``real_elements=False`` (any part in any buyable colour, as before),
``real_elements=True`` with ``element_strategy="split"`` (the default) and with
``"recolour"``; then repaired as the pipeline does (only up to its limit of
``REPAIR_MAX_BRICKS`` bricks; repair's own additions recoloured where they are not real
elements, as the pipeline does).

Per model and way: bricks, bricks that are not real LEGO elements (before repair and after
it), bricks split / recoloured, visible cells recoloured and the mean CIEDE2000 of the
recolouring, one piece and stable after repair, convert CPU seconds.

Usage::

    .venv/bin/python benchmarks/bench_elements.py --per-class 1 \\
        --out benchmarks/results/bench_elements.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_buildability import modelnet, photo_colours, shapenet  # noqa: E402

from image2lego.core.pipeline import REPAIR_MAX_BRICKS  # noqa: E402
from image2lego.lego import elements  # noqa: E402
from image2lego.lego.convert import ConvertOptions, voxels_to_bricks  # noqa: E402
from image2lego.lego.fileio import atomic_write_text  # noqa: E402
from image2lego.lego.repair import repair  # noqa: E402

WAYS = {
    "off": {"real_elements": False},
    "split": {"real_elements": True, "element_strategy": "split"},
    "recolour": {"real_elements": True, "element_strategy": "recolour"},
}


def run_one(name: str, grid: np.ndarray, colors, way: str, do_repair: bool) -> dict:
    opts = ConvertOptions(color_mode="photo", k=4, **WAYS[way])
    c0 = time.process_time()
    model = voxels_to_bricks(grid, colors=colors, options=opts)
    c1 = time.process_time()
    info = model.meta.get("elements") or {}
    row = {
        "name": name,
        "way": way,
        "bricks": len(model),
        "not_elements": sum(elements.unavailable(model).values()),
        "split": info.get("split", 0),
        "recoloured": info.get("recoloured", 0),
        "recoloured_visible_cells": info.get("recoloured_visible_cells", 0),
        "mean_delta_e": info.get("mean_delta_e", 0.0),
        "colours": len({b.color for b in model.bricks}),
        "convert_cpu_s": c1 - c0,
    }
    if do_repair and len(model) <= REPAIR_MAX_BRICKS:  # the pipeline's limit
        fixed, rep = repair(model)
        row["not_elements_after_repair"] = sum(elements.unavailable(fixed).values())
        if way != "off":
            fixed, n = elements.recolour_model(fixed)
            row["repair_recoloured"] = n
        row["bricks_after_repair"] = len(fixed)
        row["one_piece"] = rep.stability.n_components == 1
        row["stable"] = bool(rep.stability.stable)
    return row


def summarise(rows: list[dict]) -> dict:
    out = {}
    for way in WAYS:
        rs = [r for r in rows if r["way"] == way]
        if not rs:
            continue
        s = {
            "models": len(rs),
            "bricks_total": int(sum(r["bricks"] for r in rs)),
            "models_with_non_elements": int(sum(r["not_elements"] > 0 for r in rs)),
            "non_elements_total": int(sum(r["not_elements"] for r in rs)),
            "split_total": int(sum(r["split"] for r in rs)),
            "recoloured_total": int(sum(r["recoloured"] for r in rs)),
            "recoloured_visible_cells_total": int(sum(r["recoloured_visible_cells"] for r in rs)),
            # CIEDE2000 from the colour a recoloured brick was meant to have, over all of them
            "mean_delta_e_recoloured": float(
                sum(r["mean_delta_e"] * r["recoloured"] for r in rs)
                / max(1, sum(r["recoloured"] for r in rs))
            ),
            "median_convert_cpu_s": float(np.median([r["convert_cpu_s"] for r in rs])),
        }
        rep = [r for r in rs if "one_piece" in r]
        if rep:
            s["repaired"] = len(rep)  # models up to the pipeline's repair limit
            s["one_piece"] = int(sum(r["one_piece"] for r in rep))
            s["stable"] = int(sum(r["stable"] for r in rep))
            s["non_elements_after_repair"] = int(sum(r["not_elements_after_repair"] for r in rep))
        out[way] = s
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=1)
    ap.add_argument("--no-repair", action="store_true")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--resummarise", type=Path, help="recompute the summary of a results JSON")
    args = ap.parse_args(argv)
    if args.resummarise:
        doc = json.loads(args.resummarise.read_text())
        doc["summary"] = summarise(doc["rows"])
        atomic_write_text(args.resummarise, json.dumps(doc, indent=1) + "\n")
        print(json.dumps(doc["summary"], indent=1))
        return 0
    shapes = shapenet(args.per_class) + modelnet(args.per_class)
    rows = []
    for k, (name, grid) in enumerate(shapes):
        colors = photo_colours(grid, seed=k)
        for way in WAYS:
            r = run_one(name, grid, colors, way, not args.no_repair)
            rows.append(r)
            print(json.dumps(r), flush=True)
    summary = summarise(rows)
    print(json.dumps(summary, indent=1))
    if args.out:
        doc = {
            "table": elements.table().header,
            "per_class": args.per_class,
            "summary": summary,
            "rows": rows,
        }
        atomic_write_text(args.out, json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Caption → LEGO (core/caption.py): time per stage and bricks for the README grid's 12 captions.

For each caption of ``tools/make_caption_grid.py`` (the grid in the README), with the default
options: the median time of each stage, as ``caption_to_lego_steps`` runs them —

* ``parse``: ``parse_caption`` — colour and size words, and the object: the all-MiniLM-L6-v2
  embedding of the caption against the class descriptions (or the word table where the
  embedding package is absent; ``--reader words`` times it anyway);
* ``latent``: the class latent (and the blended one) from ``class_latents.safetensors``;
* ``decode``: the numpy TL-Octree decoder to the caption's resolution and its threshold;
* ``convert``: voxels → merged bricks (``voxels_to_bricks``);
* ``repair``: the stability LP and repair (``lego.repair.repair``);

and the cells, bricks and stability, in wall and CPU time (``time.process_time``: the machine is
shared). ``load`` (once) reads and checks the latents and the autoencoder; ``embedding_load``
reads the model zip and builds the embedder, ``descriptions`` embeds the class descriptions
(both once a process; the descriptions' embeddings are then kept in the cache folder). The
stages are timed one by one here, and the result is checked against ``caption_to_lego_steps``
itself (same grid, same brick count), so the split cannot drift from the real pipeline. Wall
time depends on what else runs (the load average is printed).

Run: ``python benchmarks/bench_caption.py [--repeats 3] [--reader auto|embedding|words]``; writes
``benchmarks/results/bench_caption.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from image2lego.core import caption as C
from image2lego.core.pipeline import PipelineOptions, run
from image2lego.core.weightsmeta import AE_FILE, default_weights_dir
from image2lego.lego.convert import voxels_to_bricks
from image2lego.lego.repair import RepairOptions, repair
from image2lego.lego.stability import fully_supported

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "bench_caption.json"
STAGES = ("parse", "latent", "decode", "convert", "repair")
FMT = "{:<34} {:<22} {:>4} {:>6} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6}"


#: a held-out reading check: captions naming objects of the 20 classes mostly in words the word
#: table does not have, with the class a person would build (written after the class
#: descriptions; the captions that equal a description exactly were left out)
READING_SET = [
    ("a jumbo jet", "airplane"),
    ("a glider", "airplane"),
    ("a biplane", "airplane"),
    ("a helicopter", "airplane"),
    ("a jacuzzi", "bathtub"),
    ("a clawfoot tub", "bathtub"),
    ("a bunk bed", "bed"),
    ("a king size bed", "bed"),
    ("a crib", "bed"),
    ("a futon", "bed"),
    ("a picnic bench", "bench"),
    ("a pew", "bench"),
    ("a bookcase", "cabinet"),
    ("a filing cabinet", "cabinet"),
    ("a pickup truck", "car"),
    ("a convertible", "car"),
    ("a limousine", "car"),
    ("a minivan", "car"),
    ("a station wagon", "car"),
    ("a stool", "chair"),
    ("a rocking chair", "chair"),
    ("a recliner", "chair"),
    ("a throne", "chair"),
    ("a high chair", "chair"),
    ("a workstation", "desk"),
    ("a flat screen", "display"),
    ("a television set", "display"),
    ("a bureau", "dresser"),
    ("a chandelier", "lamp"),
    ("a reading light", "lamp"),
    ("a subwoofer", "loudspeaker"),
    ("a computer screen", "monitor"),
    ("an lcd monitor", "monitor"),
    ("a bedside cabinet", "night_stand"),
    ("a shotgun", "rifle"),
    ("a musket", "rifle"),
    ("a sniper rifle", "rifle"),
    ("a pistol", "rifle"),
    ("a loveseat", "sofa"),
    ("a sectional couch", "sofa"),
    ("a divan", "sofa"),
    ("an ottoman", "sofa"),
    ("a picnic table", "table"),
    ("a cell phone", "telephone"),
    ("an iphone", "telephone"),
    ("a rotary phone", "telephone"),
    ("a water closet", "toilet"),
    ("a urinal", "toilet"),
    ("a kayak", "watercraft"),
    ("a submarine", "watercraft"),
    ("a rowing boat", "watercraft"),
    ("a catamaran", "watercraft"),
    ("a ferry", "watercraft"),
]


def reading_accuracy(reader: str) -> dict:
    """How many of :data:`READING_SET` ``reader`` reads as the expected class."""
    right, wrong = 0, []
    for text, want in READING_SET:
        try:
            got = C.parse_caption(text, 0, reader).label  # type: ignore[arg-type]
        except C.CaptionError:
            got = "refused"
        right += got == want
        if got != want:
            wrong.append([text, want, got])
    return {"right": right, "of": len(READING_SET), "wrong": wrong}


def captions() -> list[str]:
    spec = importlib.util.spec_from_file_location("grid", REPO / "tools" / "make_caption_grid.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return list(mod.CAPTIONS)


class _Clock:
    """Wall and CPU seconds of each stage."""

    def __init__(self):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def start(self):
        self._t = (time.perf_counter(), time.process_time())

    def stop(self, stage: str):
        self.wall[stage] = time.perf_counter() - self._t[0]
        self.cpu[stage] = time.process_time() - self._t[1]


def stages(text: str, lat, net, opt: PipelineOptions, reader="auto") -> tuple[_Clock, dict]:
    """One pass through the stages: (their times, facts)."""
    from dataclasses import replace

    clock = _Clock()
    clock.start()
    cap = C.parse_caption(text, 0, reader)
    clock.stop("parse")

    clock.start()
    z = lat[cap.label]
    zv = z[cap.variant % len(z)][None]
    if cap.blend is not None and cap.blend in lat:
        other = lat[cap.blend]
        w = cap.blend_weight
        zv = (1.0 - w) * zv + w * other[cap.variant % len(other)][None]
    clock.stop("latent")

    clock.start()
    thr = dict(net.thresholds)
    logits = net.decode(zv, thr, cap.resolution)[cap.resolution]
    grid = logits[0, 0] > thr.get(cap.resolution, 0.0)
    clock.stop("decode")

    conv = opt.convert
    if cap.color is not None:
        conv = replace(conv, color_mode="single", color=cap.color)
    clock.start()
    model = voxels_to_bricks(grid, options=conv)
    clock.stop("convert")

    clock.start()
    report = None
    limit = opt.repair_max_bricks
    over = opt.repair and limit and len(model) > limit and not fully_supported(model)
    if opt.repair and not over:
        model, report = repair(
            model, reinforce=opt.reinforce, options=RepairOptions.from_convert(conv)
        )
    clock.stop("repair")
    facts = {
        "class": cap.label,
        "blend": cap.blend,
        "blend_weight": cap.blend_weight if cap.blend else None,
        "reader": cap.reader,
        "resolution": cap.resolution,
        "cells": int(grid.sum()),
        "bricks": len(model),
        "stable": None if report is None else bool(report.stable),
        "grid": grid,
    }
    return clock, facts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--reader", choices=C.READERS, default="auto")
    args = ap.parse_args(argv)
    opt = PipelineOptions()
    emb_load = {}
    if args.reader != "words" and C.reader_unavailable_reason() is None:
        from image2lego.core import textembed

        t, c = time.perf_counter(), time.process_time()
        emb = textembed.load_embedder()
        emb_load["embedding_load_s"] = round(time.perf_counter() - t, 3)
        emb_load["embedding_load_cpu_s"] = round(time.process_time() - c, 3)
        desc = C.class_descriptions(tuple(C.CLASS_WORDS))
        texts = [d for ds in desc.values() for d in ds]
        t, c = time.perf_counter(), time.process_time()
        emb.embed(texts)  # what a first run without the cache pays
        emb_load["descriptions_s"] = round(time.perf_counter() - t, 3)
        emb_load["descriptions_cpu_s"] = round(time.process_time() - c, 3)
        emb_load["descriptions"] = len(texts)
        print(
            f"embedding: load {emb_load['embedding_load_cpu_s']:.2f} s CPU, "
            f"{len(texts)} class descriptions {emb_load['descriptions_cpu_s']:.2f} s CPU"
        )
    d = default_weights_dir().resolve()
    t = time.perf_counter()
    lat = C.load_class_latents(d)
    from image2lego.core.npnet import load_net

    net = load_net(d, parts=("autoencoder",))
    t_load = time.perf_counter() - t
    print(f"load average {os.getloadavg()[0]:.1f}; load (latents + autoencoder) {t_load:.2f} s")
    head = ("caption", "class", "res", "cells", "bricks", *STAGES,
            "total s", "stable")  # fmt: skip
    print(FMT.format(*head))
    rows = []
    refused = []
    for text in captions():
        try:
            C.parse_caption(text, 0, args.reader)
        except C.CaptionError as exc:  # the word table does not know "truck" or "throne"
            print(f"{text[:34]:<34} refused: {exc}"[:150], flush=True)
            refused.append({"caption": text, "refused": str(exc)})
            continue
        runs = [stages(text, lat, net, opt, args.reader) for _ in range(max(1, args.repeats))]
        facts = runs[0][1]
        steps = C.caption_to_lego_steps(text, PipelineOptions(), reader=args.reader)
        ref = run(steps)  # the real pipeline
        if not np.array_equal(ref.voxels, facts["grid"]) or len(ref.model) != facts["bricks"]:
            print(f"{text!r}: the staged run differs from caption_to_lego_steps", file=sys.stderr)
            return 1
        med = {s: statistics.median(r[0].wall[s] for r in runs) for s in STAGES}
        cpu = {s: statistics.median(r[0].cpu[s] for r in runs) for s in STAGES}
        row = {
            "caption": text,
            **{k: v for k, v in facts.items() if k != "grid"},
            **{f"{s}_s": round(med[s], 6) for s in STAGES},
            **{f"{s}_cpu_s": round(cpu[s], 6) for s in STAGES},
            "total_s": round(sum(med.values()), 3),
            "total_cpu_s": round(sum(cpu.values()), 3),
        }
        rows.append(row)
        print(FMT.format(text[:34], (facts["class"] + ("+" + facts["blend"] if facts["blend"]
              else ""))[:22], facts["resolution"], facts["cells"], facts["bricks"],
              *[f"{med[s] * 1e3:.2f}ms" if med[s] < 0.1 else f"{med[s]:.2f}" for s in STAGES],
              f"{row['total_s']:.2f}", str(facts["stable"])), flush=True)  # fmt: skip
    totals = [r["total_s"] for r in rows]
    summary = {
        "median_total_s": round(statistics.median(totals), 3),
        "median_total_cpu_s": round(statistics.median(r["total_cpu_s"] for r in rows), 3),
        "median_parse_cpu_s": round(statistics.median(r["parse_cpu_s"] for r in rows), 5),
        "max_total_s": round(max(totals), 3),
        "median_bricks": statistics.median(r["bricks"] for r in rows),
        "share_repair": round(sum(r["repair_s"] for r in rows) / sum(totals), 3),
        "all_stable": all(r["stable"] for r in rows),
        "refused": len(refused),
    }
    print(
        f"median {summary['median_total_s']:.2f} s per caption (max {summary['max_total_s']:.2f}"
        f" s), median {summary['median_bricks']} bricks, repair {summary['share_repair']:.0%} of "
        f"the time, all stable: {summary['all_stable']}"
    )
    readers = ["words"] + (["embedding"] if C.reader_unavailable_reason() is None else [])
    reading = {r: reading_accuracy(r) for r in readers}
    for r, acc in reading.items():
        print(f"reading check ({r}): {acc['right']} of {acc['of']} right; wrong: "
              + ", ".join(f"{t!r} → {g}" for t, _, g in acc["wrong"][:12]))  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "load_average": round(os.getloadavg()[0], 2),
        "repeats": args.repeats,
        "load_s": round(t_load, 3),
        "reader": args.reader,
        **emb_load,
        "weights": str((d / AE_FILE).name),
        "rows": rows,
        "refused": refused,
        "reading_check": reading,
        "summary": summary,
    }
    from image2lego.lego.fileio import atomic_write_text

    atomic_write_text(args.out, json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

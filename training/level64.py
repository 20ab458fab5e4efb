"""A 64³ decoder level on top of a trained 32³ autoencoder, trained on shapes that exist at 64³.

Data (:func:`load_beds64`, :func:`load_meshes64`): the ModelNet10 beds are stored at 64³ in
``../shared/data`` (canonical frame at 64³: grounded, centred; already facing -Y), and any
labelled mesh can be voxelized at 64³ (:func:`image2lego.training.data.voxelize_mesh` with
``resolution=64``, the same alignment rules as the 32³ cache). The encoder's 32³ input is the
64³ grid pooled as the 32³ cache pools beds (2×2×2 blocks, ≥ 2 of 8 filled, holes filled), so
the lower levels see what they were trained on; the split is the 32³ cache's (same model ids,
same seeded rule), so validation beds were never trained on.

Training (:func:`finetune`): the configuration grows by one decoder level (64³, a transposed
convolution + a full 3³ context convolution + a head); the encoder and every level up to 32³
are frozen (BatchNorm statistics included), so 4³ … 32³ stay exactly as good; the new level is
trained with the plain-torch sparse decoder (:mod:`image2lego.core.sparse`), teacher-forced
(the 32³ cells expanded are prediction ∪ target, as the dense training does). Not with
MinkowskiEngine: the shipped lower levels were trained on the dense path, whose bottleneck
sees ``absent="dense"`` neighbours, which ME cannot reproduce (see :mod:`.minkowski`).

Run::

    python -m image2lego.training.level64 --init weights/ --out runs/l64 --minutes 10

writes ``<out>/weights`` (the shipped format: safetensors + JSON, float16) with the 64³
level and its threshold, and ``<out>/report.json`` (IoU at 32³ and 64³ on validation beds;
the 64³ baseline is the 32³ prediction with every cell split into 8).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from ..core.model import ModelConfig, OctreeAutoencoder, head_resolutions, octree_targets
from ..core.sparse import SparseOctreeDecoder, sparse_octree_loss
from ..lego.errors import get_logger, logging_to_stdout
from .data import BED_FILE, _read_source, canonicalize, fill_solid, pool2

RES64 = 64

log = get_logger()


def load_beds64(data=None, limit: int | None = None):
    """``(grids64 (N, 64, 64, 64) bool, inputs32 (N, 32, 32, 32) bool, split (N,) str)``."""
    from ..core.paths import data_dir
    from .data import _make_set, assign_split

    grids, _ = _read_source(data_dir(data) / BED_FILE, limit)
    g64 = np.stack([canonicalize(fill_solid(g), RES64) for g in grids])
    g32 = np.stack([fill_solid(pool2(g)) for g in g64])
    n = len(g64)
    vs = _make_set(g32, ["bed"] * n, ["modelnet10"] * n, [f"bed_{i:04d}" for i in range(n)],
                   [0] * n)  # fmt: skip
    assign_split(vs)
    return g64, g32, vs.split


def load_meshes64(files, up: str = "auto"):
    """Labelled meshes voxelized at 64³ (solid) and their 32³ encoder inputs."""
    from .data import voxelize_mesh

    g64 = np.stack([voxelize_mesh(f, RES64, up=up) for f in files])
    return g64, np.stack([fill_solid(pool2(g)) for g in g64])


def pick_mesh_files(mesh_root: Path, n: int) -> list[Path]:
    """``n`` labelled meshes spread evenly over the sorted list (so over every class)."""
    files = sorted(Path(mesh_root).glob("*/*.obj"))
    if n >= len(files):
        return files
    return [files[i] for i in np.linspace(0, len(files) - 1, n).round().astype(int)]


def load_mesh_set64(files, cache: Path | None = None):
    """``(grids64, inputs32, split, labels)`` of labelled meshes, split as the 32³ cache splits
    them (same model ids, same seeded rule: a validation mesh was never trained on at 32³
    either). Grids are kept in ``cache`` (an ``.npz``) once voxelized; broken files skipped."""
    from .data import _make_set, assign_split, mesh_source

    keys = [f"{Path(f).parent.name}/{Path(f).stem}" for f in files]
    g64 = None
    if cache is not None and Path(cache).is_file():
        with np.load(cache) as z:
            if list(z["keys"]) == keys:
                g64, ok = z["g64"], z["ok"]
    if g64 is None:
        grids, ok_list = [], []
        for i, f in enumerate(files):
            try:
                grids.append(load_meshes64([f])[0][0])
                ok_list.append(True)
            except (ValueError, FileNotFoundError) as e:  # a broken file must not stop it
                log.warning(f"  skipped {f}: {e}")
                grids.append(np.zeros((RES64,) * 3, bool))
                ok_list.append(False)
            if (i + 1) % 50 == 0:
                log.info(f"  meshes at 64³: {i + 1}/{len(files)}")
        g64, ok = np.stack(grids), np.array(ok_list)
        if cache is not None:
            from ..lego.fileio import atomic_path

            with atomic_path(Path(cache), suffix=".tmp.npz", mkdir=True) as tmp:
                np.savez_compressed(tmp, g64=g64, ok=ok, keys=np.array(keys))
    files = [f for f, k in zip(files, ok, strict=True) if k]
    g64 = g64[ok]
    g32 = np.stack([fill_solid(pool2(g)) for g in g64])
    labels = [Path(f).parent.name.lower() for f in files]
    ids = [f"{Path(f).parent.name}/{Path(f).stem}" for f in files]
    vs = _make_set(g32, labels, [mesh_source(Path(f)) for f in files], ids, [0] * len(files))
    assign_split(vs)
    return g64, g32, vs.split, np.array(labels)


def grow_config(cfg: ModelConfig, channels: int = 8) -> ModelConfig:
    d = cfg.to_dict()
    d["dec_channels"] = (*cfg.dec_channels, channels)
    d["conv3_extra"] = (*cfg.conv3_extra, RES64)
    return ModelConfig.from_dict(d)


def grown_autoencoder(base: OctreeAutoencoder, channels: int = 8, seed: int = 0):
    """A copy of ``base`` with a fresh 64³ level (lower levels: ``base``'s weights)."""
    torch.manual_seed(seed)
    ae = OctreeAutoencoder(grow_config(base.cfg, channels))
    st = ae.state_dict()
    st.update(base.state_dict())
    ae.load_state_dict(st)
    return ae


def _trainable(ae: OctreeAutoencoder):
    ae.requires_grad_(False)
    block, head = ae.decoder.blocks[-1], ae.decoder.heads[str(RES64)]
    for m in (block, head):
        m.requires_grad_(True)
    return [p for p in ae.parameters() if p.requires_grad], (block, head)


def evaluate(ae, g64, g32, thresholds, batch: int = 8) -> dict:
    """Mean IoU at 32³ (vs the 32³ input grid) and 64³ (vs the 64³ grid), and the 64³ IoU of
    the 32³ prediction split 8-fold (the baseline a 64³ level must beat)."""
    from ..core.sparse import decode_grids

    ae.eval()
    ious: dict[str, list[float]] = {"iou32": [], "iou64": [], "iou64_upsampled32": []}

    def iou(a, b):
        u = (a | b).sum()
        return float((a & b).sum() / u) if u else 1.0

    for i in range(0, len(g64), batch):
        with torch.inference_mode():
            z = ae.encoder(torch.from_numpy(g32[i : i + batch]).float()[:, None])
        out = decode_grids(ae.decoder, z, (32, RES64), thresholds)
        for j, o in enumerate(out):
            up = o[32].repeat(2, 0).repeat(2, 1).repeat(2, 2)
            ious["iou32"].append(iou(o[32], g32[i + j]))
            ious["iou64"].append(iou(o[RES64], g64[i + j]))
            ious["iou64_upsampled32"].append(iou(up, g64[i + j]))
    return {k: round(float(np.mean(v)), 4) for k, v in ious.items()} | {"n": len(g64)}


def choose_threshold64(ae, g64, g32, thresholds, batch: int = 8) -> float:
    """The 64³ logit threshold with the best mean IoU on (training) grids."""
    cands = np.linspace(-2.0, 2.0, 17)
    scores = np.zeros(len(cands))
    sp = SparseOctreeDecoder(ae.decoder)
    ae.eval()
    for i in range(0, len(g64), batch):
        with torch.inference_mode():
            z = ae.encoder(torch.from_numpy(g32[i : i + batch]).float()[:, None])
            lv = sp(z, mode="pred", thresholds=thresholds)[RES64]
        for j, t in enumerate(cands):
            occ = lv.occupied(len(z), float(t))
            tg = g64[i : i + batch]
            inter = (occ & tg).sum((1, 2, 3))
            union = np.maximum((occ | tg).sum((1, 2, 3)), 1)
            scores[j] += float((inter / union).sum())
    return float(cands[int(scores.argmax())])


def finetune(args) -> dict:
    from ..core.weights import load_weights, save_weights

    torch.set_num_threads(args.threads)
    w = load_weights(args.init)
    ae = grown_autoencoder(w.autoencoder, args.channels, args.seed)
    g64, g32, split = load_beds64(args.data, args.limit)
    source = np.array(["bed"] * len(g64))
    if args.meshes:
        from .data import extract_meshes

        files = pick_mesh_files(extract_meshes(args.data), args.meshes)
        m64, m32, msplit, _ = load_mesh_set64(files, Path(args.out) / "meshes64.npz")
        g64, g32 = np.concatenate([g64, m64]), np.concatenate([g32, m32])
        split = np.concatenate([split, msplit])
        source = np.concatenate([source, ["mesh"] * len(m64)])
    tr, va = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    va_bed, va_mesh = va[source[va] == "bed"], va[source[va] == "mesh"]
    params, (block, head) = _trainable(ae)
    opt = torch.optim.Adam(params, lr=args.lr)
    thr = dict(w.thresholds)

    def evaluate_all() -> dict:
        res = {"beds": evaluate(ae, g64[va_bed], g32[va_bed], thr)}
        if len(va_mesh):
            res["meshes"] = evaluate(ae, g64[va_mesh], g32[va_mesh], thr)
        return res

    before = evaluate_all()  # the 64³ level still untrained
    rng = np.random.default_rng(args.seed)
    decoder = SparseOctreeDecoder(ae.decoder)
    t0 = time.time()
    step, losses = 0, []
    while time.time() - t0 < 60 * args.minutes and step < args.max_steps:
        idx = np.sort(rng.choice(tr, size=args.batch, replace=False))
        x64 = torch.from_numpy(g64[idx]).float()[:, None]
        x32 = torch.from_numpy(g32[idx]).float()[:, None]
        tg = octree_targets(x64, head_resolutions(ae.cfg))
        tg[32] = torch.maximum(tg[32], x32)  # the 64³ targets' parents and the input's cells
        ae.eval()
        block.train()
        with torch.no_grad():
            z = ae.encoder(x32)
        out = decoder(z, targets=tg, mode="union", thresholds=thr)
        loss, _ = sparse_octree_loss({RES64: out[RES64]}, tg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        step += 1
        if step % 20 == 0:
            log.info(f"step {step} loss {np.mean(losses[-20:]):.4f} "
                  f"({time.time() - t0:.0f}s)")  # fmt: skip
    ae.eval()
    sub = rng.choice(tr, size=min(96, len(tr)), replace=False)
    thr[RES64] = choose_threshold64(ae, g64[sub], g32[sub], thr)
    after = evaluate_all()
    report = {
        "steps": step,
        "minutes": round((time.time() - t0) / 60, 1),
        "batch": args.batch,
        "channels64": args.channels,
        "threshold64": thr[RES64],
        "train_beds": int((source[tr] == "bed").sum()),
        "train_meshes": int((source[tr] == "mesh").sum()),
        "val_beds": len(va_bed),
        "val_meshes": len(va_mesh),
        "before": before,
        "after": after,
        "final_loss20": float(np.mean(losses[-20:])) if losses else None,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"training": {**w.meta.get("training", {}), "level64": report}}
    if w.meta.get("image_thresholds"):
        meta["image_thresholds"] = w.meta["image_thresholds"] | {str(RES64): thr[RES64]}
    save_weights(out / "weights", ae, w.image_encoder, thr, meta=meta)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    log.info(json.dumps(report, indent=1))
    return report


def graft(level_dir: str | Path, into_dir: str | Path) -> dict:
    """Put the 64³ level of the weights in ``level_dir`` (written by :func:`finetune`) into the
    weights in ``into_dir``, keeping ``into_dir``'s image encoder and thresholds: only the
    autoencoder file, the configuration, the 64³ thresholds and the level's report change.
    Refused unless every tensor of ``into_dir``'s autoencoder is in the level's, equal (the
    level was trained on exactly that frozen autoencoder). Each file is replaced atomically,
    the metadata last; a graft cut between the two is refused at load by the autoencoder's
    checksum (run it again). Returns the new metadata."""
    from safetensors.numpy import load_file

    from ..core.weightsmeta import META_FILE, WeightsError, read_meta
    from ..lego.fileio import atomic_path

    src, dst = Path(level_dir), Path(into_dir)
    new, old = read_meta(src), read_meta(dst)
    if RES64 not in [int(r) for r in new["thresholds"]]:
        raise WeightsError(f"{src}: these weights have no 64³ level to graft")
    a_new = load_file(str(src / new["files"]["autoencoder"]["name"]))
    a_old = load_file(str(dst / old["files"]["autoencoder"]["name"]))
    bad = [k for k, v in a_old.items() if k not in a_new or not np.array_equal(a_new[k], v)]
    if bad:
        raise WeightsError(
            f"{src}: its 64³ level was trained on another autoencoder than {dst}'s "
            f"({len(bad)} tensors differ, e.g. {bad[0]})"
        )
    doc = dict(old)
    doc["config"] = new["config"]
    doc["resolutions"] = new.get("resolutions", old.get("resolutions"))
    doc["thresholds"] = old["thresholds"] | {str(RES64): new["thresholds"][str(RES64)]}
    if old.get("image_thresholds") is not None:
        t64 = (new.get("image_thresholds") or new["thresholds"])[str(RES64)]
        doc["image_thresholds"] = old["image_thresholds"] | {str(RES64): t64}
    doc["files"] = old["files"] | {"autoencoder": new["files"]["autoencoder"]}
    doc["training"] = dict(old.get("training", {}))
    doc["training"]["level64"] = new.get("training", {}).get("level64")
    name = new["files"]["autoencoder"]["name"]
    with atomic_path(dst / name) as tmp:
        tmp.write_bytes((src / name).read_bytes())
    with atomic_path(dst / META_FILE) as tmp:
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m image2lego.training.level64",
                                 description=__doc__.splitlines()[0])  # fmt: skip
    ap.add_argument("--init", default=None, help="weights folder (default: the shipped ones)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", default=None)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--max-steps", type=int, default=10**9)
    ap.add_argument("--limit", type=int, default=None, help="first N beds (smoke tests)")
    ap.add_argument("--meshes", type=int, default=0,
                    help="also N labelled meshes at 64³ (spread over classes)")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--graft", metavar="WEIGHTS", default=None,
                    help="no training: put the 64³ level of <out>/weights into WEIGHTS "
                    "(e.g. weights/), keeping its image encoder and thresholds")  # fmt: skip
    args = ap.parse_args(argv)
    with logging_to_stdout(logging.INFO):
        if args.graft:
            doc = graft(Path(args.out) / "weights", args.graft)
            log.info(f"grafted the 64³ level into {args.graft}: {doc['config']['dec_channels']}")
        else:
            finetune(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Training: a tiny overfit, seeded determinism, resumable checkpoints, augmentation, export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from image2lego.core.model import (
    PRUNED_LOGIT,
    ImageEncoder,
    ModelConfig,
    OctreeAutoencoder,
    octree_loss,
    octree_targets,
)
from image2lego.training import train as T

from .conftest import REPO
from .tiny_model import TINY


def _args(tmp_path, *extra: str):
    return T.build_parser().parse_args(
        ["ae", "--out", str(tmp_path), "--quiet", "--config", json.dumps(TINY.to_dict()), *extra]
    )


@pytest.mark.slow
def test_tiny_overfit_reaches_high_iou():
    """A few shapes are learned to IoU > 0.9 at every resolution (about 1-3 min on 2 cores)."""
    torch.manual_seed(0)
    cfg = ModelConfig(
        latent_dim=32, dec_channels=(32, 32, 32, 16, 16), enc_channels=(8, 16, 16, 32, 32)
    )
    vox = torch.from_numpy(T.synthetic_shapes(4, seed=3)).float()[:, None]
    tg = octree_targets(vox)
    m = OctreeAutoencoder(cfg)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(120):
        loss, _ = octree_loss(m(vox, mode="union", targets=tg), tg)
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.train()  # batch statistics: with 4 samples the running stats lag behind
    with torch.no_grad():
        z = m.encoder(vox)
    ious = T.ious_from_latents(m.decoder.train(), z, vox.numpy()[:, 0].astype(bool))
    for r, v in ious.items():
        assert v.mean() > 0.9, (r, v)


@pytest.mark.slow
def test_training_is_seeded_and_resumes(tmp_path):
    vox = T.synthetic_shapes(12, seed=1)
    a = T.train_autoencoder(_args(tmp_path / "a", "--epochs", "1", "--batch", "4"), T.Dist(), vox)
    b = T.train_autoencoder(_args(tmp_path / "b", "--epochs", "1", "--batch", "4"), T.Dist(), vox)
    sa, sb = T.load_checkpoint(a), T.load_checkpoint(b)  # weights_only=True loads them
    for k in sa["model"]:
        assert torch.equal(sa["model"][k], sb["model"][k]), k
    assert sa["step"] == 3 and sa["epoch"] == 1
    # re-running with more epochs resumes from the checkpoint rather than starting over
    c = T.train_autoencoder(_args(tmp_path / "a", "--epochs", "2", "--batch", "4"), T.Dist(), vox)
    sc = T.load_checkpoint(c)
    assert sc["step"] == 6 and sc["epoch"] == 2
    hist = json.loads(sc["history"])
    assert [h["epoch"] for h in hist] == [0, 1]
    # resuming gives the same weights as an uninterrupted two-epoch run
    d = T.train_autoencoder(_args(tmp_path / "d", "--epochs", "2", "--batch", "4"), T.Dist(), vox)
    sd = T.load_checkpoint(d)
    for k in sd["model"]:
        assert torch.allclose(sc["model"][k].float(), sd["model"][k].float(), atol=1e-6), k


@pytest.mark.slow
def test_warm_start_copies_weights_and_checks_the_configuration(tmp_path):
    vox = T.synthetic_shapes(8, seed=1)
    a = T.train_autoencoder(_args(tmp_path / "a", "--epochs", "1", "--batch", "4"), T.Dist(), vox)
    args = _args(tmp_path / "b", "--epochs", "1", "--batch", "4", "--init", str(a))
    sb = T.load_checkpoint(T.train_autoencoder(args, T.Dist(), vox))
    assert json.loads(sb["history"])[0]["init"] == str(a)
    assert sb["step"] == 2  # a fresh schedule, not a resumed one
    # the image encoder: the same weights come back; another configuration is refused
    src = ImageEncoder(TINY)
    path = tmp_path / "image.pt"
    T.save_checkpoint(path, {"model": src.state_dict(), "config": json.dumps(TINY.to_dict())})
    dst = ImageEncoder(TINY)
    T._warm_start(path, dst, TINY, T.Dist())
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    other = ModelConfig(img_hidden=TINY.img_hidden * 2)
    with pytest.raises(ValueError, match="another model configuration"):
        T._warm_start(path, ImageEncoder(other), other, T.Dist())


def test_grow_is_function_preserving_and_refuses_shrinking(tmp_path):
    """A wider 32³ level and a new residual 3³ convolution there: same logits at the start."""
    torch.manual_seed(0)
    small = OctreeAutoencoder(TINY).eval()
    for m in small.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    # wider 16³ and 32³ levels (so the 16³ → 32³ convolution grows on both sides), and a new
    # residual 3³ convolution at 32³
    big_cfg = ModelConfig(**{**TINY.to_dict(), "dec_channels": (16, 16, 16, 12, 8),
                             "conv3_extra": (32,)})  # fmt: skip
    big = OctreeAutoencoder(big_cfg)
    big.load_state_dict(T.grow_state(small.state_dict(), big.state_dict()))
    big.eval()
    x = torch.from_numpy(T.synthetic_shapes(3, seed=4)).float()[:, None]
    with torch.no_grad():
        a, b = small(x), big(x)
    for r in a:
        assert torch.allclose(a[r], b[r], atol=1e-5), r
    assert big.decoder.blocks[-1].conv is not None and small.decoder.blocks[-1].conv is None
    with pytest.raises(ValueError, match="cannot grow"):
        T.grow_state(big.state_dict(), small.state_dict())
    # through --init: refused without --grow; with it, the check of the logits passes
    path = tmp_path / "small.pt"
    T.save_checkpoint(path, {"model": small.state_dict(), "config": json.dumps(TINY.to_dict())})
    with pytest.raises(ValueError, match="use --grow"):
        T._warm_start(path, OctreeAutoencoder(big_cfg), big_cfg, T.Dist())
    hist = T._warm_start(path, OctreeAutoencoder(big_cfg), big_cfg, T.Dist(), grow=True)
    assert hist[0]["init"] == str(path)


@pytest.mark.slow
def test_freeze_below_trains_only_the_fine_levels(tmp_path):
    vox = T.synthetic_shapes(8, seed=1)
    a = T.train_autoencoder(_args(tmp_path / "a", "--epochs", "1", "--batch", "4"), T.Dist(), vox)
    args = _args(tmp_path / "b", "--epochs", "1", "--batch", "4", "--init", str(a),
                 "--freeze-below", "32")  # fmt: skip
    b = T.train_autoencoder(args, T.Dist(), vox)
    sa, sb = T.load_checkpoint(a)["model"], T.load_checkpoint(b)["model"]
    last = len(TINY.dec_channels) - 1
    moved = {k for k in sa if not torch.equal(sa[k], sb[k])}
    fine = (f"decoder.blocks.{last}.", "decoder.heads.32.")
    assert moved and all(k.startswith(fine) for k in moved), sorted(moved)
    assert any("weight" in k for k in moved)
    with pytest.raises(ValueError, match="not a decoder resolution"):
        T._freeze_below(OctreeAutoencoder(TINY), 12)


def test_checkpoint_is_plain_tensors(tmp_path):
    vox = T.synthetic_shapes(4, seed=2)
    p = T.train_autoencoder(_args(tmp_path, "--epochs", "1", "--batch", "4"), T.Dist(), vox)
    st = torch.load(p, weights_only=True)
    assert {"model", "opt", "epoch", "step", "config"} <= set(st)
    assert ModelConfig.from_dict(json.loads(st["config"])) == TINY
    assert not list(tmp_path.glob("*.tmp"))


def test_time_budget_stops_cleanly(tmp_path):
    vox = T.synthetic_shapes(40, seed=2)
    args = _args(tmp_path, "--epochs", "50", "--batch", "4", "--max-minutes", "0.0001")
    p = T.train_autoencoder(args, T.Dist(), vox)
    st = T.load_checkpoint(p)
    assert p.name == "ae_last.pt" and st["step"] < 10


def test_lr_schedule():
    assert T._lr_at(0, 1000, 1.0, warmup=10) == pytest.approx(0.1)
    assert T._lr_at(10, 1000, 1.0, warmup=10) == pytest.approx(1.0)
    assert T._lr_at(999, 1000, 1.0, warmup=10) == pytest.approx(0.02, abs=1e-3)
    # the time budget pulls the schedule down even when few steps were made
    assert T._lr_at(20, 1000, 1.0, warmup=10, frac_time=1.0) == pytest.approx(0.02)


def test_augment_images_keeps_range_and_moves_pixels():
    g = torch.Generator().manual_seed(0)
    x = torch.ones(4, 1, 128, 128)
    x[:, :, 40:90, 50:80] = 0.2
    y = T._augment_images(x, g)
    assert y.shape == x.shape
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    assert float((y - x).abs().mean()) > 0.01


def test_synthetic_shapes_and_thresholds():
    vox = T.synthetic_shapes(6, seed=0)
    assert vox.shape == (6, 32, 32, 32) and vox.dtype == bool
    assert all(v.any() for v in vox)
    m = OctreeAutoencoder(TINY)
    z = T.encode_voxels(m.encoder, vox)
    thr = T.choose_thresholds(m.decoder, z, vox, grid=np.array([-1.0, 0.0, 1.0]))
    assert sorted(thr) == [4, 8, 16, 32] and set(thr.values()) <= {-1.0, 0.0, 1.0}


class _NoisyOracleDecoder:
    """Stands in for a trained decoder: logits = ±1 from the target + noise, with the real
    decoder's pruning (children of cells at or below the threshold get PRUNED_LOGIT)."""

    def __init__(self, vox: np.ndarray, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.tg = octree_targets(torch.from_numpy(vox))
        self.noise = {r: torch.randn(t.shape, generator=g) * 1.2 for r, t in self.tg.items()}

    def eval(self):
        return self

    def __call__(self, z, mode="pred", thresholds=None, max_res=None, targets=None):
        rows = z[:, 0].long()
        out, alive = {}, None
        for r in (4, 8, 16, 32):
            if max_res is not None and r > max_res:
                break
            lg = (2 * self.tg[r][rows] - 1) + self.noise[r][rows]
            if alive is not None:
                for dim in (2, 3, 4):
                    alive = alive.repeat_interleave(2, dim)
                lg = torch.where(alive, lg, torch.full_like(lg, PRUNED_LOGIT))
            out[r] = lg
            alive = lg > (thresholds or {}).get(r, 0.0)
        return out


def test_choose_thresholds_matches_brute_force_search():
    """One decode per level gives the thresholds that decoding once per candidate gives."""
    vox = T.synthetic_shapes(6, seed=3)
    dec = _NoisyOracleDecoder(vox)
    z = torch.arange(len(vox)).float()[:, None]
    grid = np.linspace(-1.5, 1.5, 7)
    brute: dict[int, float] = {}
    for r in (4, 8, 16, 32):
        scores = [
            T.ious_from_latents(dec, z, vox, {**brute, r: float(t)}, max_res=r)[r].mean()
            for t in grid
        ]
        brute[r] = float(grid[int(np.argmax(scores))])
    assert T.choose_thresholds(dec, z, vox, grid=grid, batch=4) == brute
    assert len(set(brute.values())) > 1  # coarse levels favour recall: not a degenerate case
    with pytest.raises(ValueError, match="pruned logit"):
        T.choose_thresholds(dec, z, vox, grid=np.array([-30.0, 0.0]))


def test_epoch_order_partitions_across_ranks():
    class D:
        world, rank = 2, 0

    d0, d1 = D(), D()
    d1.rank = 1
    a, b = T.epoch_order(10, 0, 5, d0), T.epoch_order(10, 0, 5, d1)
    assert len(a) == len(b) == 5 and sorted(np.concatenate([a, b]).tolist()) == list(range(10))
    assert not np.array_equal(T.epoch_order(10, 1, 5, d0), a)  # reshuffled each epoch


def _dry_run_shipped(runs, env_extra=None):
    """tools/train_shipped.sh with ``PY=echo``: the train commands it would run, one per line."""
    import os
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "tools" / "train_shipped.sh"
    env = {**os.environ, "RUNS": str(runs), "PY": "echo", **(env_extra or {})}
    out = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, check=True)
    return [ln for ln in out.stdout.splitlines() if not ln.startswith("==")], out.stdout


def test_train_shipped_chains_rounds_and_restarts(tmp_path):
    """The script that remakes the shipped weights: every round after the first warm-starts
    both networks from the round before, the stage order is ae → recal → image, the export and
    the benchmark use the last round, and a second run skips every finished stage."""
    lines, _ = _dry_run_shipped(tmp_path)
    stages = [ln.split()[2] if "training.train" in ln else "eval" for ln in lines]
    n_rounds = stages.count("ae")
    assert n_rounds >= 4
    assert stages == ["ae", "recal", "image"] * n_rounds + ["export", "eval"]
    ae_cmds = [ln.split() for ln in lines if ".training.train ae " in ln]
    img_cmds = [ln.split() for ln in lines if ".training.train image " in ln]
    first = int(ae_cmds[0][ae_cmds[0].index("--out") + 1].rsplit("ae", 1)[1])
    for k, (ae, img) in enumerate(zip(ae_cmds, img_cmds, strict=True)):
        n = first + k
        assert ae[ae.index("--out") + 1] == f"{tmp_path}/ae{n}"
        assert img[img.index("--ae") + 1] == f"{tmp_path}/ae{n}/ae_final.pt"
        if k == 0:
            assert "--init" not in ae and "--init-image" not in img  # from scratch
        else:
            assert ae[ae.index("--init") + 1] == f"{tmp_path}/ae{n - 1}/ae_final.pt"
            assert img[img.index("--init-image") + 1] == f"{tmp_path}/img{n - 1}/image_last.pt"
    last = first + n_rounds - 1
    export = lines[-2].split()
    assert export[export.index("--ae") + 1] == f"{tmp_path}/ae{last}/ae_final.pt"
    assert export[export.index("--weights-out") + 1] == "weights"
    assert f"--fp32-checkpoint {tmp_path}/ae{last}/ae_final.pt" in lines[-1]
    again, text = _dry_run_shipped(tmp_path)
    assert again == [lines[-1]]  # only the benchmark runs again
    assert text.count("done before, skipped") == 3 * n_rounds + 1


@pytest.mark.slow
def test_import_shipped_weights_round_trips(tmp_path):
    """`train import` turns weights/ into checkpoints a fine-tuning round can start from:
    the same logits as the shipped networks, BatchNorm marked precise."""
    from image2lego.core.weights import load_weights

    ae_p, img_p = T.import_weights(None, tmp_path)
    st = T.load_checkpoint(ae_p)
    assert st["bn_recalibrated"] is True
    w = load_weights()
    cfg = T.ModelConfig.from_dict(json.loads(st["config"]))
    ae = T.OctreeAutoencoder(cfg)
    ae.load_state_dict(st["model"])
    x = torch.from_numpy(T.synthetic_shapes(2, seed=1)).float()[:, None]
    with torch.no_grad():
        a, b = ae.eval()(x), w.autoencoder(x)
    assert max(float((a[r] - b[r]).abs().max()) for r in a) < 1e-5
    assert set(T.load_checkpoint(img_p)["model"]) == set(w.image_encoder.state_dict())


@pytest.mark.slow
def test_recalibration_keeps_a_frozen_encoders_statistics():
    ae = T.OctreeAutoencoder(T.ModelConfig())
    x = T.synthetic_shapes(32, seed=2)
    before = {k: v.clone() for k, v in ae.encoder.state_dict().items()}
    T.recalibrate_bn(ae, x, encoder=False)
    after = ae.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    T.recalibrate_bn(ae, x)
    assert not all(torch.equal(before[k], ae.encoder.state_dict()[k]) for k in before)


def test_train_classes_round_keeps_the_latents_of_its_image_encoder():
    """tools/train_classes.sh trains the decoder and the image encoder at the same time; that
    is only valid while the autoencoder round freezes the encoder (--freeze-below) and the
    image round regresses the latents of the encoder it started from."""
    import re
    import subprocess

    script = REPO / "tools/train_classes.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    ae = re.search(r'"\$\{T\[@\]\}" ae (.*?)&\n', text, re.S).group(1)
    image = re.search(r'"\$\{T\[@\]\}" image (.*?)\n\S', text, re.S).group(1)
    assert "--freeze-below 2" in ae and '--init "$RUNS/v6/ae_final.pt"' in ae
    assert '--ae "$RUNS/v6/ae_final.pt"' in image
    assert "--balance" in ae and "--balance" in image

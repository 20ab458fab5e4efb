"""Weights files (save/load with checks, clear errors) and the Predictor API."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
import torch

from image2lego.core.inference import Predictor
from image2lego.core.model import ImageEncoder, ModelConfig, OctreeAutoencoder
from image2lego.core.weights import (
    AE_FILE,
    IMAGE_FILE,
    META_FILE,
    WeightsError,
    default_weights_dir,
    load_weights,
    save_weights,
)

from .tiny_model import TINY

THR = {4: 0.0, 8: -0.5, 16: 0.25, 32: 0.5}


@pytest.fixture()
def tiny_weights(tmp_path):
    torch.manual_seed(0)
    ae, img = OctreeAutoencoder(TINY).eval(), ImageEncoder(TINY).eval()
    save_weights(tmp_path, ae, img, THR, meta={"image_thresholds": {"32": 0.0}})
    return tmp_path, ae, img


def test_roundtrip_float16(tiny_weights):
    d, ae, img = tiny_weights
    assert {p.name for p in d.iterdir()} == {AE_FILE, IMAGE_FILE, META_FILE}
    w = load_weights(d)
    assert w.config == TINY and w.thresholds == THR
    for k, v in ae.state_dict().items():
        got = w.autoencoder.state_dict()[k]
        assert got.dtype == v.dtype
        assert torch.allclose(got.float(), v.float(), rtol=1e-3, atol=1e-3), k
    assert not w.autoencoder.training and not w.image_encoder.training


def test_images_and_round_trips_use_their_own_thresholds(tmp_path):
    # image thresholds so high that nothing survives: predict() must use them, reconstruct()
    # the autoencoder's
    torch.manual_seed(0)
    ae, img = OctreeAutoencoder(TINY).eval(), ImageEncoder(TINY).eval()
    low = {4: -30.0, 8: -30.0, 16: -30.0, 32: -30.0}
    save_weights(tmp_path, ae, img, low, meta={"image_thresholds": {"4": 30.0}})
    w = load_weights(tmp_path)
    assert w.image_thresholds == low | {4: 30.0} and w.thresholds == low
    p = Predictor(w)
    grids = p.predict(np.full((128, 128), 128, np.uint8), resolutions=(4, 32))
    assert not grids[4].any() and not grids[32].any()
    rec = p.reconstruct(np.ones((32, 32, 32), bool), resolutions=(4, 32))
    assert rec[4].all() and rec[32].all()


def test_missing_files_are_clear_errors(tmp_path, tiny_weights):
    with pytest.raises(WeightsError, match="metadata file is missing"):
        load_weights(tmp_path / "nowhere")
    d, _, _ = tiny_weights
    (d / IMAGE_FILE).unlink()
    with pytest.raises(WeightsError, match=f"{IMAGE_FILE}: weight file is missing"):
        load_weights(d)
    load_weights(d, parts=("autoencoder",))  # the autoencoder alone still loads


def test_truncated_file_is_a_clear_error(tiny_weights):
    d, _, _ = tiny_weights
    data = (d / AE_FILE).read_bytes()
    (d / AE_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=f"{AE_FILE}: checksum mismatch"):
        load_weights(d)
    # without a recorded checksum the safetensors parser itself must fail cleanly
    meta = json.loads((d / META_FILE).read_text())
    del meta["files"]["autoencoder"]["sha256"]
    (d / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match=f"{AE_FILE}: not a readable safetensors file"):
        load_weights(d)


def test_wrong_shape_is_a_clear_error(tmp_path, tiny_weights):
    d, _, _ = tiny_weights
    other = ModelConfig(**{**TINY.to_dict(), "dec_channels": (16, 16, 16, 8, 6)})
    save_weights(tmp_path / "other", OctreeAutoencoder(other), None, THR)
    (d / AE_FILE).write_bytes((tmp_path / "other" / AE_FILE).read_bytes())
    meta = json.loads((d / META_FILE).read_text())
    meta["files"]["autoencoder"].pop("sha256")
    (d / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(
        WeightsError,
        match=r"decoder.blocks.4.up.weight. has shape \(8, 6, 2, 2, 2\), the model expects",
    ):
        load_weights(d)


def test_bad_meta_is_a_clear_error(tiny_weights):
    d, _, _ = tiny_weights
    meta = json.loads((d / META_FILE).read_text())
    (d / META_FILE).write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(WeightsError, match="format_version 99 is not supported"):
        load_weights(d)
    (d / META_FILE).write_text("{not json")
    with pytest.raises(WeightsError, match="not valid JSON"):
        load_weights(d)


def test_predictor_on_preprocessed_arrays(tiny_weights):
    d, _, _ = tiny_weights
    p = Predictor.load(d, threads=1)
    img = np.full((128, 128), 255, np.uint8)
    img[30:100, 40:90] = 90
    out = p.predict(img, resolutions=(8, 32))
    assert sorted(out) == [8, 32]
    assert out[32].shape == (32, 32, 32) and out[32].dtype == bool
    assert out[8].shape == (8, 8, 8)
    # octree consistency: every occupied 32³ cell lies in an occupied 8³ cell... of the same
    # pass (pruning makes children of empty parents empty)
    grid = np.zeros((32, 32, 32), bool)
    grid[8:24, 8:24, 0:20] = True
    rec = p.reconstruct(grid)
    assert sorted(rec) == [4, 8, 16, 32]
    for lo, hi in ((4, 8), (8, 16), (16, 32)):
        up = rec[lo].repeat(2, 0).repeat(2, 1).repeat(2, 2)
        assert not (rec[hi] & ~up).any()


def test_predictor_rejects_bad_input(tiny_weights):
    d, _, _ = tiny_weights
    p = Predictor.load(d, threads=1)
    with pytest.raises(ValueError, match="must be \\(128, 128\\) grayscale"):
        p.predict(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match="must be uint8"):
        p.predict(np.zeros((128, 128), np.float32))
    with pytest.raises(ValueError, match="unsupported resolution"):
        p.predict(np.zeros((128, 128), np.uint8), resolutions=(64,))
    with pytest.raises(ValueError, match="expects a \\(32, 32, 32\\) grid"):
        p.reconstruct(np.zeros((30, 30, 30), bool))
    with pytest.raises(TypeError, match="image must be"):
        p.predict(12)


def _shipped():
    d = default_weights_dir()
    if not (d / META_FILE).is_file():
        pytest.skip("no shipped weights in weights/")
    return d


def test_shipped_weights_load_and_reconstruct_a_chair_like_shape():
    p = Predictor.load(_shipped())
    grid = np.zeros((32, 32, 32), bool)
    grid[8:24, 8:24, 10:12] = True  # seat
    for x in (8, 22):
        for y in (8, 22):
            grid[x : x + 2, y : y + 2, 0:10] = True  # legs
    grid[8:24, 22:24, 12:28] = True  # back
    rec = p.reconstruct(grid)
    inter = (rec[32] & grid).sum()
    assert inter / (rec[32] | grid).sum() > 0.3
    assert rec[4].sum() > 0


def test_shipped_weights_predict_every_resolution_cheaply():
    """Every requested level, nested like an octree, the same answer twice, and a bound on the
    *CPU* time spent (not wall time: the machine may be busy; the wall-clock median is
    `eval_model.py`'s job). ~0.1 CPU-s here; 5 CPU-s would mean, say, a dense path at 32³."""
    p = Predictor.load(_shipped())
    img = np.full((128, 128), 255, np.uint8)
    img[30:110, 40:90] = 80
    first = p.predict(img, resolutions=(4, 8, 16, 32))
    cpu = []
    for _ in range(3):
        t = time.process_time()
        out = p.predict(img, resolutions=(4, 8, 16, 32))
        cpu.append(time.process_time() - t)
    assert sorted(out) == [4, 8, 16, 32]
    for r in (4, 8, 16, 32):
        assert out[r].shape == (r, r, r) and out[r].dtype == bool
        np.testing.assert_array_equal(out[r], first[r])
    for lo, hi in ((4, 8), (8, 16), (16, 32)):  # a fine cell only inside an occupied coarse one
        parent = out[lo].repeat(hi // lo, 0).repeat(hi // lo, 1).repeat(hi // lo, 2)
        assert not (out[hi] & ~parent).any()
    assert out[32].any()
    assert sorted(cpu)[1] < 5.0


@pytest.mark.parametrize(("env", "expected"), [("1", 1), ("3", 3), ("", None), ("zero", None)])
def test_default_threads_follow_omp_num_threads(monkeypatch, env, expected):
    from image2lego.core import inference

    monkeypatch.setenv("OMP_NUM_THREADS", env)
    fallback = max(1, min(4, os.cpu_count() or 1))
    assert inference._default_threads() == (expected or fallback)

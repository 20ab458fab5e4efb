"""training/level64.py's labelled-mesh data at 64³: picked over every class, split like the 32³
cache, voxelized once."""

from __future__ import annotations

import numpy as np
import pytest

trimesh = pytest.importorskip("trimesh")

from image2lego.training import level64  # noqa: E402


def _library(root, classes=("Bed", "Cup", "Table"), per_class=4):
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            box = trimesh.creation.box(extents=(1.0 + 0.3 * i, 0.6, 0.4 + 0.2 * i))
            box.export(root / c / f"{i + 1}.obj")
    return root


def test_meshes_at_64_are_spread_over_classes_split_by_model_and_cached(tmp_path, monkeypatch):
    root = _library(tmp_path / "infomr")
    files = level64.pick_mesh_files(root, 6)
    assert len(files) == 6 and {f.parent.name for f in files} == {"Bed", "Cup", "Table"}
    assert level64.pick_mesh_files(root, 99) == sorted(root.glob("*/*.obj"))
    all_files = level64.pick_mesh_files(root, 12)
    cache = tmp_path / "m64.npz"
    g64, g32, split, labels = level64.load_mesh_set64(all_files, cache)
    assert g64.shape == (12, 64, 64, 64) and g32.shape == (12, 32, 32, 32)
    assert g64.dtype == bool and all(g.any() for g in g64)
    # the encoder's input is the 64³ grid pooled 2x2x2, as the 32³ cache pools the beds
    assert g32.sum() * 8 >= 0.5 * g64.sum()
    # one validation model per class of four (ceil(10 %)), as the 32³ cache splits them
    for c in ("bed", "cup", "table"):
        assert sorted(split[labels == c].tolist()) == ["train"] * 3 + ["val"]

    def refuse(_files):
        raise AssertionError("voxelized again although cached")

    monkeypatch.setattr(level64, "load_meshes64", refuse)
    again = level64.load_mesh_set64(all_files, cache)
    np.testing.assert_array_equal(again[0], g64)
    np.testing.assert_array_equal(again[2], split)


def test_graft_adds_the_64_level_and_keeps_the_rest(tmp_path):
    """Grafting a trained 64³ level into other weights of the same autoencoder keeps their
    image encoder and thresholds and decodes the level's voxels; another autoencoder is refused."""
    import torch

    from image2lego.core.inference import Predictor
    from image2lego.core.model import ImageEncoder, OctreeAutoencoder
    from image2lego.core.weights import load_weights, save_weights
    from image2lego.core.weightsmeta import WeightsError, read_meta
    from image2lego.training.train import synthetic_shapes

    from .tiny_model import TINY

    torch.manual_seed(0)
    base, img = OctreeAutoencoder(TINY).eval(), ImageEncoder(TINY).eval()
    thr = {4: 0.0, 8: 0.1, 16: -0.2, 32: 0.3}
    save_weights(tmp_path / "shipped", base, img, thr, meta={"image_thresholds": {"32": -0.4}})
    grown = level64.grown_autoencoder(base, channels=4).eval()
    save_weights(tmp_path / "run" / "weights", grown, None, {**thr, 32: 9.0, 64: -0.5})
    doc = level64.graft(tmp_path / "run" / "weights", tmp_path / "shipped")
    assert doc["thresholds"] == {"4": 0.0, "8": 0.1, "16": -0.2, "32": 0.3, "64": -0.5}
    assert doc["image_thresholds"] == {"32": -0.4, "64": -0.5}
    w = load_weights(tmp_path / "shipped")
    assert w.image_encoder is not None
    p = Predictor(w)
    assert p.resolutions == (4, 8, 16, 32, 64)
    grid = synthetic_shapes(1, seed=0)[0]
    ref = Predictor(load_weights(tmp_path / "run" / "weights", parts=("autoencoder",)))
    ref.thresholds = dict(p.thresholds)
    np.testing.assert_array_equal(p.reconstruct(grid, (64,))[64], ref.reconstruct(grid, (64,))[64])
    # a level trained on another autoencoder is refused, the weights stay as they were
    torch.manual_seed(1)
    other = level64.grown_autoencoder(OctreeAutoencoder(TINY), channels=4)
    save_weights(tmp_path / "bad" / "weights", other, None, {**thr, 64: 0.0})
    before = read_meta(tmp_path / "shipped")
    with pytest.raises(WeightsError, match="another autoencoder"):
        level64.graft(tmp_path / "bad" / "weights", tmp_path / "shipped")
    assert read_meta(tmp_path / "shipped") == before

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

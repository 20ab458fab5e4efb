"""voxels_to_bricks end to end: cover, options, colours, errors, meta."""

from __future__ import annotations

import numpy as np

from image2lego.lego.catalogue import CATALOGUE
from image2lego.lego.convert import voxels_to_bricks
from image2lego.lego.voxels import to_layers


def sphere(n: int) -> np.ndarray:
    c = (n - 1) / 2
    g = np.indices((n, n, n))
    return ((g - c) ** 2).sum(0) <= (n / 2) ** 2


def test_single_voxel_converts():
    g = np.zeros((3, 3, 3), dtype=bool)
    g[1, 1, 1] = True
    m = voxels_to_bricks(g)
    assert len(m) >= 1
    assert all(b.part_id in CATALOGUE for b in m.bricks)
    assert m.occupancy().all()  # cropped to the one voxel
    assert m.meta["n_voxels"] == 1
    assert m.meta["connected"]


def test_sphere_cover_and_connected():
    g = sphere(16)
    m = voxels_to_bricks(g)
    layers = to_layers(g)
    np.testing.assert_array_equal(m.occupancy(), layers.occ)
    assert m.meta["connectivity"]["n_components"] == 1
    assert m.meta["warnings"] == []

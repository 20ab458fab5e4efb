"""lego.meshvox: triangles → voxels with colours."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from image2lego.lego.meshvox import surface_samples, voxelize


def _box(sx, sy, sz):
    v = np.array([[x, y, z] for x in (0, sx) for y in (0, sy) for z in (0, sz)], float)
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    tris = []
    for a, b, c, d in faces:
        tris += [(a, b, c), (a, c, d)]
    return v[np.array(tris)]


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 12), st.integers(1, 12), st.integers(1, 12))
def test_a_box_becomes_a_solid_block_of_its_proportions(a, b, c):
    tris = _box(a, b, c)
    n = max(a, b, c)
    grid, colors = voxelize(tris, resolution=n)
    assert grid.shape == (a, b, c)
    assert grid.all()  # filled inside
    assert colors is None


def test_shell_only_without_fill():
    grid, _ = voxelize(_box(6, 6, 6), resolution=6, fill=False)
    assert grid[0].all() and not grid[2:4, 2:4, 2:4].any()


def test_colours_follow_triangles_and_reach_the_interior():
    tris = _box(8, 8, 8)
    top = tris[:, :, 2].min(axis=1) > 7.5  # the two top triangles red, the rest blue
    tri_colors = np.where(top[:, None], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0])
    grid, colors = voxelize(tris, 8, tri_colors=tri_colors)
    assert np.allclose(colors[4, 4, 7], [1, 0, 0], atol=0.35)  # top surface mostly red
    assert np.allclose(colors[4, 4, 0], [0, 0, 1])
    assert np.allclose(colors[4, 4, 3], [0, 0, 1])  # interior takes the nearest side's colour


def test_samples_cover_each_triangle_densely():
    tri = np.array([[[0, 0, 0], [4, 0, 0], [0, 4, 0]]], float)
    pts, owner = surface_samples(tri, 0.5)
    assert (owner == 0).all() and len(pts) >= 45
    assert (pts[:, 0] + pts[:, 1] <= 4 + 1e-9).all()


def test_bad_meshes_are_clear_errors():
    with pytest.raises(ValueError, match="no faces"):
        voxelize(np.zeros((0, 3, 3)))
    with pytest.raises(ValueError, match="degenerate"):
        voxelize(np.zeros((1, 3, 3)))
    with pytest.raises(ValueError, match="lower the resolution"):
        surface_samples(_box(100, 100, 100), 0.01, max_samples=1000)

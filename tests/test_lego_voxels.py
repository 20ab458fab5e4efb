"""Voxel grids: validation, hollow filling, shells with supports, scale modes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from image2lego.lego import voxels
from image2lego.lego.voxels import (
    MAX_VOXELS_PER_AXIS,
    fill_hollow,
    make_shell,
    to_layers,
    validate_grid,
)


def box(n=12):
    return np.ones((n, n, n), dtype=bool)


@pytest.mark.parametrize(
    "bad, exc, msg",
    [
        ([[[True]]], TypeError, "numpy.ndarray"),
        (np.ones((4, 4), dtype=bool), ValueError, "3-D"),
        (np.ones((2, 2, 2, 2), dtype=bool), ValueError, "3-D"),
        (np.ones((4, 4, 4), dtype=np.uint8), TypeError, "dtype bool"),
        (np.ones((4, 4, 4), dtype=float), TypeError, "dtype bool"),
        (np.zeros((4, 4, 4), dtype=bool), ValueError, "empty"),
        (np.ones((MAX_VOXELS_PER_AXIS + 1, 1, 1), dtype=bool), ValueError, "per axis"),
    ],
)
def test_validate_grid_errors(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        validate_grid(bad)


def test_validate_grid_accepts_single_voxel_and_limit():
    g = np.zeros((5, 5, 5), dtype=bool)
    g[2, 2, 2] = True
    assert validate_grid(g).sum() == 1
    big = np.zeros((MAX_VOXELS_PER_AXIS, 1, 1), dtype=bool)
    big[0] = True
    assert validate_grid(big).shape == (MAX_VOXELS_PER_AXIS, 1, 1)
    assert voxels.MAX_VOXELS == MAX_VOXELS_PER_AXIS


def test_fill_hollow_fills_closed_cavity_but_not_open_cup():
    g = box(8)
    g[2:6, 2:6, 2:6] = False  # closed cavity
    assert fill_hollow(g).all()
    cup = g.copy()
    cup[3:5, 3:5, 6:] = False  # opening to the top
    filled = fill_hollow(cup)
    assert not filled[3:5, 3:5, 6:].any()
    assert (filled == cup).all()


@pytest.mark.parametrize("wall", [1, 2, 3])
def test_shell_keeps_requested_wall_thickness(wall):
    g = box(12)
    s = make_shell(g, wall=wall, supports=False)
    d = ndimage.distance_transform_cdt(np.pad(g, 1), metric="chessboard")[1:-1, 1:-1, 1:-1]
    # exactly the voxels within `wall` of the outside
    np.testing.assert_array_equal(s, d <= wall)
    # along every axis through the middle the wall is `wall` voxels thick on both sides
    line = s[:, 6, 6]
    assert line[:wall].all() and line[-wall:].all() and not line[wall:-wall].any()
    assert s[6, 6, :wall].all() and not s[6, 6, wall:-wall].any()


def test_shell_of_hollow_input_is_filled_first():
    g = box(10)
    g[1:9, 1:9, 1:9] = False  # already a thin shell
    s = make_shell(g, wall=2, supports=False)
    assert s[:, :, :2].all() and s[:, :, -2:].all()


def test_shell_supports_reach_floor_and_roof():
    g = box(16)
    wall = 1
    s = make_shell(g, wall=wall, supports=True, support_spacing=4)
    cavity = ~s[wall:-wall, wall:-wall, wall:-wall]
    assert cavity.any(), "still hollow"
    # support columns: interior columns that are completely filled
    full = s.all(axis=2)
    inner = full[wall:-wall, wall:-wall]
    xs, ys = np.nonzero(inner)
    assert len(xs) >= 4
    # every column that is filled in the cavity is filled from the ground (z=0) to the top
    touched = s[wall:-wall, wall:-wall, wall:-wall].any(axis=2)
    np.testing.assert_array_equal(touched, inner)
    # columns lie on a lattice of pitch 4
    assert set(np.diff(np.unique(xs)).tolist()) <= {4}
    assert s.sum() < g.sum()


def test_shell_rejects_bad_wall():
    with pytest.raises(ValueError, match="wall thickness"):
        make_shell(box(6), wall=0)


@given(st.integers(1, 40))
def test_proportional_plates_keep_every_voxel_layer(nz):
    g = np.ones((1, 1, nz), dtype=bool)
    L = to_layers(g, "proportional", "plates")
    assert L.n_plates == int(np.ceil(nz * 2.5 - 0.5))
    counts = np.bincount(L.src_z, minlength=nz)
    assert set(counts.tolist()) <= {2, 3}
    assert abs(L.n_plates * 3.2 - nz * 8.0) <= 3.2


@given(st.integers(1, 40))
def test_proportional_bricks_never_drop_a_voxel_layer(nz):
    g = np.zeros((1, 1, nz), dtype=bool)
    g[0, 0, ::2] = True  # alternate layers: a dropped layer would show
    L = to_layers(g, "proportional", "bricks")
    assert L.n_plates % 3 == 0
    pooled = sorted(int(z) for grp in L.groups[::3] for z in grp)
    assert pooled == list(range(nz))
    assert abs(L.n_plates * 3.2 - nz * 8.0) <= 9.6


def test_paper_scale_is_one_brick_per_voxel():
    g = np.ones((2, 2, 5), dtype=bool)
    for bt in ("bricks", "plates", "mixed"):
        L = to_layers(g, "paper", bt)
        assert L.n_plates == 15
        assert L.mm_per_voxel == pytest.approx((8.0, 8.0, 9.6))


def test_to_layers_rejects_unknown_modes():
    with pytest.raises(ValueError, match="scale"):
        to_layers(box(2), "huge")
    with pytest.raises(ValueError, match="brick_types"):
        to_layers(box(2), brick_types="tiles")


def test_resample_takes_lowest_occupied_value():
    g = np.zeros((1, 1, 2), dtype=bool)
    g[0, 0, 1] = True
    vals = np.array([[[5, 7]]])
    L = to_layers(g, "proportional", "bricks")  # both voxel layers pool into brick layer 0?
    out = L.resample(vals, g)
    assert set(np.unique(out[L.occ]).tolist()) == {7}
    assert (out[~L.occ] == -1).all()


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["plates", "bricks", "mixed"]))
def test_layers_preserve_6_connectivity(seed, bt):
    rng = np.random.default_rng(seed)
    g = rng.random((5, 5, 6)) < 0.5
    if not g.any():
        g[0, 0, 0] = True
    L = to_layers(g, "proportional", bt)
    assert ndimage.label(L.occ)[1] <= ndimage.label(g)[1]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    density=st.floats(0.02, 0.3),
    frac=st.sampled_from([0.0, 0.05, 0.2, 1.0]),
)
def test_drop_fragments_keeps_the_largest_piece_and_every_big_one(seed, density, frac):
    grid = np.random.default_rng(seed).random((10, 10, 10)) < density
    grid[0, 0, 0] = True
    out, removed = voxels.drop_fragments(grid, frac)
    assert not (out & ~grid).any()  # only ever removes
    assert removed == int(grid.sum() - out.sum())
    labels, n = ndimage.label(grid)
    sizes = np.bincount(labels.ravel())[1:]
    kept = []
    for k, size in enumerate(sizes, start=1):
        piece_kept = out[labels == k]
        assert piece_kept.all() or not piece_kept.any()  # whole pieces only
        kept.append(bool(piece_kept.all()))
        if size >= frac * sizes.sum():
            assert kept[-1]  # big enough: kept
    small_kept = [k for k, s_ in enumerate(sizes) if kept[k] and s_ < frac * sizes.sum()]
    assert small_kept in ([], [int(np.argmax(sizes))])  # at most the largest, if it is small
    assert any(kept) and kept[int(np.argmax(sizes))]


def test_drop_fragments_on_a_chair_with_a_speck():
    chair = np.zeros((16, 16, 16), bool)
    chair[4:12, 4:12, 6:8] = True  # seat
    for x, y in ((4, 4), (10, 4), (4, 10), (10, 10)):
        chair[x : x + 2, y : y + 2, 0:6] = True  # legs
    speck = np.zeros_like(chair)
    speck[14, 14, 14] = True
    out, removed = voxels.drop_fragments(chair | speck)
    assert removed == 1
    np.testing.assert_array_equal(out, chair)
    same, none = voxels.drop_fragments(chair)
    assert none == 0 and (same == chair).all()
    with pytest.raises(ValueError, match="min_fraction"):
        voxels.drop_fragments(chair, 1.5)

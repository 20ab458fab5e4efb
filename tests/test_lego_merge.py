"""Merging cells into bricks: exact cover, catalogue parts, colours, orientation, repair."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from image2lego.lego import merge
from image2lego.lego.bricks import BrickModel
from image2lego.lego.catalogue import CATALOGUE
from image2lego.lego.connectivity import analyze, brick_arrays, label_lattice
from image2lego.lego.convert import ConvertOptions, voxels_to_bricks

COLORS = (4, 14, 71)


def random_cells(seed: int, shape=(6, 5, 6), fill=0.6, ncol=2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    occ = rng.random(shape) < fill
    col = np.asarray(COLORS[:ncol])[rng.integers(0, ncol, shape)]
    return np.where(occ, col, -1)


def check_model(bricks, cells: np.ndarray) -> None:
    """Exact cover, no overlap, catalogue parts, one colour each equal to the cells'."""
    model = BrickModel(bricks, cells.shape)
    assert all(b.part_id in CATALOGUE for b in bricks)
    d = brick_arrays(model)
    lab = label_lattice(d, cells.shape)  # raises on overlap
    np.testing.assert_array_equal(lab >= 0, cells >= 0)
    np.testing.assert_array_equal(model.occupancy(), cells >= 0)
    vol = (d["nx"] * d["ny"] * d["h"]).sum()
    assert vol == (cells >= 0).sum()
    colour_of_cell = np.where(lab >= 0, d["color"][np.maximum(lab, 0)], -1)
    np.testing.assert_array_equal(colour_of_cell, cells)


def bricks_of(asm: merge.Assembly):
    return asm.to_bricks()


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.sampled_from(["plates", "mixed"]),
    st.floats(0.2, 1.0),
    st.integers(1, 3),
)
def test_build_exact_cover_catalogue_colours(seed, bt, fill, ncol):
    cells = random_cells(seed, fill=fill, ncol=ncol)
    asm = merge.build(cells, bt, seed=seed % 7)
    check_model(bricks_of(asm), cells)
    if bt == "plates":
        assert all(b.height == 1 for b in bricks_of(asm))


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 3))
def test_bricks_mode_cover(seed, ncol):
    base = random_cells(seed, shape=(6, 6, 3), ncol=ncol)
    cells = np.repeat(base, 3, axis=2)  # brick layers: three identical plates
    asm = merge.build(cells, "bricks", seed=0)
    bricks = bricks_of(asm)
    check_model(bricks, cells)
    assert all(b.height == 3 for b in bricks)


def test_mixed_makes_bricks_where_three_plates_agree():
    cells = np.full((4, 4, 4), 71)
    cells[:2, :, 1] = 4  # breaks the brick column on the left half of slab 0
    asm = merge.build(cells, "mixed")
    bricks = bricks_of(asm)
    check_model(bricks, cells)
    slab0 = [b for b in bricks if b.z < 3]
    assert any(b.height == 3 for b in slab0)  # right half is bricks
    assert all(b.height == 1 for b in slab0 if b.x < 2)  # left half plates
    top = [b for b in bricks if b.z == 3]
    assert all(b.height == 1 for b in top)  # fourth layer can only be plates


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 5))
def test_deterministic_for_a_seed(seed, s):
    cells = random_cells(seed)
    a = bricks_of(merge.build(cells, "mixed", seed=s))
    b = bricks_of(merge.build(cells, "mixed", seed=s))
    assert a == b


def test_orientation_alternates_between_layers():
    cells = np.full((12, 12, 6), 71)
    bricks = bricks_of(merge.build(cells, "plates"))
    for z in range(6):
        long = [b for b in bricks if b.z == z and b.size[0] != b.size[1]]
        along_y = sum(b.rotated for b in long)
        assert long
        if z % 2 == 0:
            assert along_y < len(long) / 4, z
        else:
            assert along_y > 3 * len(long) / 4, z


def test_solid_block_uses_large_parts():
    cells = np.full((20, 20, 3), 71)
    bricks = bricks_of(merge.build(cells, "mixed"))
    assert all(b.height == 3 for b in bricks)
    assert len(bricks) <= 25  # 400 studs, mostly 2x10


def test_seams_are_staggered_in_a_one_stud_wall():
    # a 1-stud-thick wall 16 long: the two phases put their joints in different places
    row = np.full((16, 1), 71)
    seams = []
    for phase in (0, 1):
        r = merge.tile_layer(row, 1, axis=0, phase=phase)
        ends = set((r.x + r.nx).tolist()) - {16}
        seams.append(ends)
    assert seams[0] and seams[1] and not (seams[0] & seams[1])
    # and the merged wall (6 plates high) holds together
    cells = np.full((16, 1, 6), 71)
    asm = merge.build(cells, "plates")
    assert merge.connect(asm, 1).connected


def test_tile_layer_respects_axis_and_covers():
    cells = np.full((10, 4), 71)
    r = merge.tile_layer(cells, 1, axis=0)
    assert (r.nx >= r.ny).all()
    r = merge.tile_layer(cells.T.copy(), 1, axis=1)
    assert (r.ny >= r.nx).all()
    area = (r.nx * r.ny).sum()
    assert area == 40


def test_merge_layer_public_api():
    cells = np.full((5, 3), -1)
    cells[:4, :2] = 71
    cells[4, 0] = 4
    bricks = merge.merge_layer(cells, z=6, height=3, parity=1, seed=2)
    assert all(b.z == 6 and b.height == 3 for b in bricks)
    full = np.full((5, 3, 9), -1)
    full[:, :, 6:9] = cells[:, :, None]
    check_model(bricks, full)
    with pytest.raises(ValueError, match="height"):
        merge.merge_layer(cells, 0, 2)
    with pytest.raises(ValueError, match="2-D"):
        merge.merge_layer(np.zeros((2, 2, 2)), 0, 1)


def test_decomposition_phases_avoid_each_others_seams():
    for n in range(2, 60):
        for lengths in (merge.run_lengths(1, 1), merge.run_lengths(2, 3)):
            d0 = merge.decomposition(n, lengths, 0)
            d1 = merge.decomposition(n, lengths, 1)
            if not d0:
                continue
            assert sum(d0) == sum(d1) == n
            assert set(d0) <= set(lengths) and set(d1) <= set(lengths)
            if n > max(lengths):
                s0 = set(np.cumsum(d0)[:-1].tolist())
                s1 = set(np.cumsum(d1)[:-1].tolist())
                assert not (s0 & s1), (n, d0, d1)


def connected_cells(seed: int, shape, fill: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    g = rng.random(shape) < fill
    lab, n = ndimage.label(g)
    if n == 0:
        g[0, 0, 0] = True
        return g
    big = np.argmax(np.bincount(lab.ravel())[1:]) + 1
    return lab == big


@settings(max_examples=10, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.sampled_from(["plates", "mixed"]),
    st.sampled_from(["proportional", "paper"]),
    st.floats(0.25, 0.8),
)
def test_connected_voxels_give_connected_bricks(seed, bt, scale, fill):
    """The issue's guarantee: a 6-connected voxel set becomes one connected brick model."""
    g = connected_cells(seed, (5, 5, 5), fill)
    m = voxels_to_bricks(g, options=ConvertOptions(brick_types=bt, scale=scale))
    assert m.meta["connected"], m.meta["connectivity"]
    assert analyze(m).n_components == 1
    assert m.meta["warnings"] == []


def test_connect_bridges_a_one_brick_thick_beam_with_plates():
    # two pillars joined by a beam one brick layer thick and 14 long (longer than any brick)
    cells = np.full((16, 1, 12), -1)
    cells[0, 0, :] = 71
    cells[15, 0, :] = 71
    cells[:, 0, 9:12] = 71
    asm = merge.build(cells, "mixed")
    res = merge.connect(asm, 1)
    assert res.connected, res.message
    check_model(bricks_of(asm), cells)


def test_connect_reports_when_impossible():
    # a flat sheet one brick layer thick in bricks-only mode cannot hold together
    cells = np.full((24, 1, 3), 71)
    asm = merge.build(cells, "bricks")
    res = merge.connect(asm, 1)
    assert not res.connected
    assert res.n_components > 1
    assert "could not connect" in res.message and "plates are disabled" in res.message


def test_remerge_region_keeps_cover_and_colours():
    cells = random_cells(3, shape=(8, 8, 6), fill=0.9)
    asm = merge.build(cells, "mixed")
    model = BrickModel(bricks_of(asm), cells.shape)
    region = [b for b in model.bricks if b.z == 3]
    assert region
    new = merge.remerge_region(model, region, seed=1, demote=True)
    check_model(new.bricks, cells)
    assert all(b.height == 1 for b in new.bricks if 3 <= b.z < 6 and b not in model.bricks)
    with pytest.raises(ValueError, match="not in the model"):
        merge.remerge_region(model, [region[0].__class__(99, 0, 0, "3005")])


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 2))
def test_stack_and_coalesce_keep_cover_and_never_disconnect(seed, ncol):
    cells = random_cells(seed, shape=(6, 6, 9), fill=0.8, ncol=ncol)
    asm = merge.build(cells, "plates", seed=0)
    n0, _ = asm.components()
    count0 = asm.n_alive
    made = merge.stack_plates(asm)
    n1, _ = asm.components()
    merged = merge.coalesce(asm)
    n2, _ = asm.components()
    check_model(bricks_of(asm), cells)
    assert n2 <= n1 <= n0
    assert asm.n_alive == count0 - 2 * made - merged


def test_stack_plates_makes_bricks_from_identical_columns():
    cells = np.full((2, 2, 6), 71)
    asm = merge.build(cells, "plates")
    assert merge.stack_plates(asm) == 2
    assert sorted((b.z, b.part_id) for b in bricks_of(asm)) == [(0, "3003"), (3, "3003")]


def test_greedy_tiling_covers():
    cells = random_cells(5, shape=(9, 7, 1), fill=0.7, ncol=2)[:, :, 0]
    r = merge.greedy_tiling(cells, 1)
    plane = r.paint(cells.shape)
    np.testing.assert_array_equal(plane >= 0, cells >= 0)
    assert (r.color[plane[cells >= 0]] == cells[cells >= 0]).all()


def test_whole_parts_first_tiles_the_remainder_strip_across():
    c = np.full((1, 48, 48), 71)
    plain = merge.tile_layers(c, 3, 0, 0, 0)[0]
    strip = merge.tile_layers(c, 3, 0, 0, 0, strip=True)[0]
    assert len(plain) == 120  # 24 row pairs x (10+10+10+10+8)
    assert len(strip) == 116  # the 8-wide remainder strip tiled with 2x10s across
    assert (strip.nx * strip.ny).sum() == 48 * 48


def test_trial_undoes_exactly_unless_kept_and_on_errors():
    cells = random_cells(5, shape=(8, 8, 6), fill=0.9)
    asm = merge.build(cells, "mixed")
    lab0, alive0 = asm.lab.copy(), list(asm.alive)
    ids = [i for i in range(len(asm.x)) if asm.alive[i]][:5]
    with merge.trial(asm, ids) as t:
        t.new = merge._retile(asm, ids, True, 1, 0)
        assert not np.array_equal(asm.lab, lab0)
    np.testing.assert_array_equal(asm.lab, lab0)
    assert asm.alive[: len(alive0)] == alive0
    with pytest.raises(RuntimeError), merge.trial(asm, ids) as t:
        t.new = merge._retile(asm, ids, True, 1, 0)
        raise RuntimeError("boom")
    np.testing.assert_array_equal(asm.lab, lab0)
    with merge.trial(asm, ids) as t:
        t.new = merge._retile(asm, ids, True, 1, 0)
        t.keep = True
    check_model(bricks_of(asm), cells)
    assert not np.array_equal(asm.lab, lab0)


def test_colour_bound_sees_colour_seams_bricks_cannot_cross():
    cells = np.full((6, 4, 6), 4)
    cells[3:] = 1  # two halves touching side by side only
    assert merge.colour_bound(cells) == 2
    cells[:, :, 3:] = 4  # a common top joins them through stacking
    assert merge.colour_bound(cells) == 1
    asm = merge.build(cells, "mixed")
    assert merge.connect(asm, 1).connected


@pytest.mark.xfail(
    strict=True,
    reason="known merger limit: a one-layer zigzag in plates can stay in two pieces "
    "(found by test_connected_voxels_give_connected_bricks with fresh examples)",
)
def test_a_one_layer_zigzag_in_plates_connects():
    g = connected_cells(7789, (5, 5, 5), 0.375)
    m = voxels_to_bricks(g, options=ConvertOptions(brick_types="plates", scale="proportional"))
    assert m.meta["connected"], m.meta["connectivity"]

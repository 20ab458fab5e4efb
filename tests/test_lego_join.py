"""Floating pieces are bridged, supported or (specks) removed: lego.join and the converter."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from image2lego.lego.connectivity import analyze, brick_arrays, label_lattice
from image2lego.lego.convert import ConvertOptions, voxels_to_bricks
from image2lego.lego.join import MAX_PIECES, added_bricks, default_max_bridge, join_pieces


def _pieces(g):
    return ndimage.label(g)[1]


def chair(gap: int = 1) -> np.ndarray:
    g = np.zeros((14, 14, 14), bool)
    for x, y in ((2, 2), (9, 2), (2, 9), (9, 9)):
        g[x : x + 2, y : y + 2, 0:5] = True  # legs
    g[2:11, 2:11, 5 + gap : 7 + gap] = True  # seat, ``gap`` cells above the legs
    return g


def test_a_seat_above_its_legs_is_bridged_with_one_cell_per_leg():
    g = chair(gap=1)
    out, r = join_pieces(g)
    assert r.pieces_before == 5 and r.pieces_after == 1
    assert [a.kind for a in r.additions] == ["bridge"] * 4
    assert r.added_cells == 4 and int((out & ~g).sum()) == 4
    assert (out & g).sum() == g.sum()  # nothing removed
    np.testing.assert_array_equal(r.added, out & ~g)
    # each bridge cell sits right under the seat, on top of a leg (vertical: it stacks)
    for x, y, z in np.argwhere(r.added):
        assert z == 5 and g[x, y, 4] and g[x, y, 6]


def test_a_far_piece_gets_a_support_column_to_the_ground():
    g = np.zeros((30, 6, 12), bool)
    g[0:4, 0:4, 0:6] = True  # the main body
    g[24:27, 1:4, 8:10] = True  # floating, 20 cells away
    out, r = join_pieces(g)
    (a,) = r.additions
    assert a.kind == "support" and a.to[2] == -1 and a.cells == 8
    x, y, _ = a.at
    assert out[x, y, 0:8].all() and (out & ~g).sum() == 8
    # under its centre of mass (the 3x3 footprint's middle)
    assert (x, y) == (25, 2)


def test_a_support_lands_on_whatever_is_below():
    g = np.zeros((30, 6, 14), bool)
    g[0:4, 0:4, 0:6] = True
    g[20:28, 0:5, 0:3] = True  # a second grounded piece (far from the first)
    g[22:25, 1:4, 8:10] = True  # floating above it, 5 cells up
    out, r = join_pieces(g, max_bridge=3)
    supports = [a for a in r.additions if a.kind == "support"]
    assert len(supports) == 1 and supports[0].cells == 5 and supports[0].to[2] == 2
    assert r.pieces_after == 2  # the two grounded pieces stand on the base apart


def test_specks_are_removed_only_when_asked_and_never_the_largest_piece():
    g = chair(gap=0)
    g[12, 12, 12] = True
    out, r = join_pieces(g, speck_cells=2)
    assert r.count("speck") == 1 and r.removed_cells == 1 and not out[12, 12, 12]
    assert r.pieces_after == 1 and r.added_cells == 0
    tiny = np.zeros((4, 4, 4), bool)
    tiny[0, 0, 0] = True
    same, r = join_pieces(tiny, speck_cells=5)
    assert same.sum() == 1 and not r.additions
    with pytest.raises(ValueError, match="speck_cells"):
        join_pieces(g, speck_cells=-1)
    with pytest.raises(TypeError, match="max_bridge"):
        join_pieces(g, max_bridge=1.5)


@st.composite
def two_boxes(draw):
    n = 16
    lo_a = [draw(st.integers(0, n - 3)) for _ in range(3)]
    a = [(lo, draw(st.integers(lo + 1, min(lo + 4, n)))) for lo in lo_a]
    lo_b = [draw(st.integers(0, n - 3)) for _ in range(3)]
    b = [(lo, draw(st.integers(lo + 1, min(lo + 4, n)))) for lo in lo_b]
    return a, b


@settings(max_examples=60, deadline=None)
@given(two_boxes())
def test_the_bridge_between_two_boxes_is_as_short_as_any_path(boxes):
    a, b = boxes
    g = np.zeros((16, 16, 16), bool)
    g[tuple(slice(lo, hi) for lo, hi in a)] = True
    gb = np.zeros_like(g)
    gb[tuple(slice(lo, hi) for lo, hi in b)] = True
    if (g & gb).any():
        return
    g |= gb
    # Manhattan distance between the boxes' nearest cells; a path fills that minus one cell
    d = sum(max(0, blo - (ahi - 1), alo - (bhi - 1)) for (alo, ahi), (blo, bhi) in zip(a, b))
    out, r = join_pieces(g, max_bridge=4)
    assert (out & g).sum() == g.sum()
    if d <= 1:
        assert not r.additions
        return
    bridges = [x for x in r.additions if x.kind == "bridge"]
    if d - 1 <= 4:
        assert len(bridges) == 1 and bridges[0].cells == d - 1
        assert r.pieces_after == 1
    else:  # too far for a bridge: a support (the pieces may then be near enough)
        ground = min(a[2][0], b[2][0])
        if a[2][0] == b[2][0] == ground:  # both stand on the ground: left as they are
            assert not r.additions
        else:
            assert r.additions[0].kind == "support"
        assert all(x.cells <= 4 for x in bridges)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 2**31 - 1),
    st.floats(0.02, 0.25),
    st.integers(0, 3),
    st.sampled_from([(8, 8, 8), (12, 6, 10)]),
)
def test_after_joining_every_piece_stands_on_the_ground(seed, density, speck, shape):
    g = np.random.default_rng(seed).random(shape) < density
    if not g.any():
        return
    out, r = join_pieces(g, speck_cells=speck)
    kept = g & ~np.isin(ndimage.label(g)[0], _speck_labels(g, speck, r))
    # only cells are added, except the specks that were asked to go
    assert (out & kept).sum() == kept.sum() and (out & ~kept).sum() == r.added_cells
    np.testing.assert_array_equal(out & ~kept, r.added)
    if len(r.additions) >= MAX_PIECES:
        return
    lab, n = ndimage.label(out)
    ground = np.nonzero(out.any(axis=(0, 1)))[0][0]
    assert set(range(1, n + 1)) <= set(np.unique(lab[:, :, ground]).tolist())
    assert r.pieces_after == n


def _speck_labels(g, speck, r):
    lab, n = ndimage.label(g)
    return [int(lab[a.at]) for a in r.additions if a.kind == "speck"]


def test_default_bridge_scales_with_the_object():
    g = np.zeros((64, 64, 64), bool)
    g[0:60, 0:10, 0:5] = True
    assert default_max_bridge(g) == 6
    assert default_max_bridge(chair()) == 3


@pytest.mark.parametrize("color_mode", ["single", "photo"])
def test_converter_joins_a_floating_seat_into_one_connected_model(color_mode):
    g = chair(gap=2)
    colors = None
    if color_mode == "photo":
        rng = np.random.default_rng(1)
        colors = rng.random(g.shape + (3,))
    opts = ConvertOptions(color_mode=color_mode, k=3)
    m = voxels_to_bricks(g, colors=colors, options=opts)
    conn = analyze(m)
    assert conn.n_components == 1 and not conn.ungrounded
    join = m.meta["join"]
    assert join["bridges"] == 4 and join["added_cells"] == 8 and join["pieces_after"] == 1
    assert any("bridge(s)" in w for w in m.meta["warnings"])
    # the added bricks are exactly those that fill the added lattice cells
    lab = label_lattice(brick_arrays(m), tuple(m.shape))
    cells = np.asarray(m.meta["added_cells"])
    assert len(cells) and (lab[tuple(cells.T)] >= 0).all()
    assert added_bricks(m) == sorted(set(lab[tuple(cells.T)].tolist()))
    # without joining it is five pieces, four of them legs and a seat in the air
    raw = voxels_to_bricks(
        g, colors=colors, options=ConvertOptions(color_mode=color_mode, join=False)
    )
    assert analyze(raw).n_components == 5 and not raw.meta["added_cells"]
    assert raw.meta["join"] is None


def test_join_option_is_checked():
    with pytest.raises(ValueError, match="join"):
        ConvertOptions(join="yes")  # type: ignore[arg-type]

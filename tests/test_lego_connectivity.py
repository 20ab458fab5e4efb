"""Brick graph, components, ungrounded and articulation bricks on hand-made models."""

from __future__ import annotations

import numpy as np
import pytest

from image2lego.lego.bricks import Brick, BrickModel
from image2lego.lego.connectivity import analyze, brick_graph, to_networkx


def model(bricks, shape=(10, 10, 12)):
    return BrickModel(list(bricks), shape)


def edges(m):
    return sorted(map(tuple, brick_graph(m)[1].tolist()))


def test_stacked_bricks_connect_only_when_footprints_overlap():
    a = Brick(0, 0, 0, "3001")  # 2x4 brick at x 0..3, y 0..1, z 0..2
    b = Brick(3, 1, 3, "3001")  # on top, overlapping one stud (3, 1)
    c = Brick(3, 3, 0, "3001")  # on top, beside a and b: y 3..4, no overlap
    m = model([a, b, c])
    assert edges(m) == [(0, 1)]
    r = analyze(m)
    assert r.n_components == 2 and not r.connected
    assert r.ungrounded == [2]
    assert r.component_of[0] == r.component_of[1] != r.component_of[2]


def test_plates_connect_at_their_top():
    a = Brick(0, 0, 0, "3024")  # 1x1 plate, top at 1
    b = Brick(1, 0, 0, "3005")  # 1x1 brick on it
    c = Brick(4, 0, 0, "3024")  # 1x1 plate on the brick (top 4)
    d = Brick(2, 1, 1, "3024")  # floating at z=2 elsewhere
    r = analyze(model([a, b, c, d]))
    assert edges(model([a, b, c, d])) == [(0, 1), (1, 2)]
    assert r.n_components == 2
    assert r.ungrounded == [3]
    assert sorted(r.articulation) == [1]


def test_side_by_side_bricks_are_separate_but_grounded():
    a = Brick(0, 0, 0, "3003")
    b = Brick(0, 0, 2, "3003")
    r = analyze(model([a, b]))
    assert r.n_components == 2
    assert r.ungrounded == []
    assert r.articulation == []


def test_bridge_brick_is_an_articulation_point():
    # two towers joined by one 1x4 brick on top: that brick and the tower tops cut the graph
    t1 = [Brick(3 * k, 0, 0, "3005") for k in range(2)]
    t2 = [Brick(3 * k, 0, 3, "3005") for k in range(2)]
    top = Brick(6, 0, 0, "3010")  # 1x4 along x over both towers
    m = model(t1 + t2 + [top])
    r = analyze(m)
    assert r.connected
    # removing the top splits; removing a tower's upper brick detaches its lower brick
    assert sorted(r.articulation) == [1, 3, 4]
    g = to_networkx(m)
    import networkx as nx

    assert sorted(nx.articulation_points(g)) == sorted(r.articulation)


def test_articulation_matches_networkx_on_a_random_model():
    nx = pytest.importorskip("networkx")
    from image2lego.lego.convert import voxels_to_bricks

    rng = np.random.default_rng(1)
    g = rng.random((6, 6, 5)) < 0.6
    m = voxels_to_bricks(g, options=None)
    r = analyze(m)
    G = to_networkx(m)
    assert sorted(r.articulation) == sorted(nx.articulation_points(G))
    assert r.n_components == nx.number_connected_components(G)


def test_overlapping_bricks_are_rejected():
    with pytest.raises(ValueError, match="overlap"):
        analyze(model([Brick(0, 0, 0, "3001"), Brick(2, 1, 1, "3024")]))
    with pytest.raises(ValueError, match="outside"):
        analyze(model([Brick(0, 0, 8, "3001")]))


def test_summary_and_empty_model():
    r = analyze(model([]))
    assert r.n_components == 0 and not r.connected
    s = analyze(model([Brick(0, 0, 0, "3001")])).summary()
    assert s == {
        "n_components": 1,
        "connected": True,
        "n_ungrounded": 0,
        "n_articulation": 0,
        "n_links": 0,
    }


# ------------------------------------------------------------- the shared seam / neighbour helpers
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from image2lego.lego.connectivity import (  # noqa: E402
    brick_arrays,
    label_lattice,
    neighbours,
    seams,
)


def _random_model(seed: int) -> BrickModel:
    rng = np.random.default_rng(seed)
    lab = np.full((6, 6, 4), -1)
    bricks = []
    for _ in range(30):
        x, y, z = (int(v) for v in rng.integers(0, [5, 6, 4]))
        if (lab[x : x + 2, y, z] < 0).all() and x + 2 <= 6:
            lab[x : x + 2, y, z] = len(bricks)
            bricks.append(Brick(z, y, x, "3023"))  # 1x2 plate along x
        elif lab[x, y, z] < 0:
            lab[x, y, z] = len(bricks)
            bricks.append(Brick(z, y, x, "3024"))  # 1x1 plate
    return BrickModel(bricks, (6, 6, 4))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_seams_and_neighbours_match_brute_force(seed):
    m = _random_model(seed)
    d = brick_arrays(m)
    lab = label_lattice(d, m.shape)
    comp = analyze(m, articulation=False).component_of
    want = set()
    for x, y, z in np.argwhere(lab >= 0):
        for dx, dy in ((1, 0), (0, 1)):
            if x + dx < 6 and y + dy < 6:
                a, b = lab[x, y, z], lab[x + dx, y + dy, z]
                if b >= 0 and comp[a] != comp[b]:
                    want.add((min(a, b), max(a, b)))
    rows = seams(lab, comp)
    assert {(int(a), int(b)) for a, b in rows[:, :2]} == want and len(rows) == len(want)
    for b1, b2, x1, y1, x2, y2, p in rows.tolist():
        assert abs(x1 - x2) + abs(y1 - y2) == 1 and {lab[x1, y1, p], lab[x2, y2, p]} == {b1, b2}
    boxes = (d["x"], d["y"], d["z"], d["nx"], d["ny"], d["h"])
    for i in range(len(m.bricks)):
        cells = np.argwhere(lab == i)
        side, vert = set(), set()
        for x, y, z in cells:
            for dx, dy, dz in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)):
                q = (x + dx, y + dy, z + dz)
                if all(0 <= v < s for v, s in zip(q, lab.shape)) and lab[q] not in (-1, i):
                    (vert if dz else side).add(int(lab[q]))
        got = neighbours(lab, boxes, [i])
        assert side <= got  # face neighbours sideways (and diagonal ones in the box ring)
        assert side | vert <= neighbours(lab, boxes, [i], vertical=True)
        assert i not in got


_PARTS = ["3024", "3023", "3005", "3004", "3001", "3003", "3022", "3020"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 5),
            st.integers(0, 5),
            st.integers(0, 6),
            st.sampled_from(_PARTS),
            st.booleans(),
        ),
        max_size=12,
    )
)
def test_label_lattice_matches_brute_force_and_finds_every_overlap(cands):
    """Each brick's box painted one by one: the same labels, and an overlap (two bricks of
    one shape at one corner included) is refused exactly when some cell is painted twice."""
    shape = (8, 8, 10)
    bricks = [Brick(z, y, x, pid, rot) for x, y, z, pid, rot in cands]
    d = brick_arrays(BrickModel(bricks, shape))
    count = np.zeros(shape, int)
    want = np.full(shape, -1)
    inside = True
    for i in range(len(bricks)):
        x, y, z, nx, ny, h = (int(d[k][i]) for k in ("x", "y", "z", "nx", "ny", "h"))
        inside &= x + nx <= shape[0] and y + ny <= shape[1] and z + h <= shape[2]
        count[x : x + nx, y : y + ny, z : z + h] += 1
        want[x : x + nx, y : y + ny, z : z + h] = i
    if not inside:
        with pytest.raises(ValueError, match="outside"):
            label_lattice(d, shape)
    elif (count > 1).any():
        with pytest.raises(ValueError, match="overlap"):
            label_lattice(d, shape)
    else:
        lab = label_lattice(d, shape)
        assert lab.dtype == np.int64 and (lab == want).all()


def test_label_lattice_refuses_two_equal_bricks():
    with pytest.raises(ValueError, match="overlap"):
        analyze(model([Brick(0, 0, 0, "3001"), Brick(0, 0, 0, "3001")]))


def test_a_repeated_analysis_follows_the_bricks():
    """The last analysis is reused for the same bricks only: a model changed in place, or a
    request for articulation bricks the cached answer lacks, is analysed afresh."""
    m = model([Brick(0, 0, 0, "3001"), Brick(3, 0, 1, "3001"), Brick(6, 0, 0, "3001")])
    first = analyze(m, articulation=False)
    assert first.connected and first.articulation == []
    first.component_of[:] = 7  # callers get copies
    again = analyze(m, articulation=True)
    assert again.articulation == [1] and (again.component_of == 0).all()
    m.bricks.append(Brick(9, 6, 6, "3005"))  # a floating 1x1 brick
    changed = analyze(m, articulation=False)
    assert changed.n_components == 2 and changed.ungrounded == [3] and changed.articulation == []
    m.bricks[3] = Brick(9, 6, 6, "3005", color=4)  # colour alone: the same connectivity
    assert analyze(m).ungrounded == [3]

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

"""Build steps: one layer per step, big layers split into coherent chunks, parts per step."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from image2lego.lego.bricks import Brick, BrickModel
from image2lego.lego.convert import ConvertOptions, voxels_to_bricks
from image2lego.lego.steps import assign_steps, build_steps, defer_to_support, step_indices


def grid_of_1x1(n: int, z: int = 0) -> list[Brick]:
    return [Brick(z, y, x, "3005") for x in range(n) for y in range(n)]


def test_one_layer_per_step_in_order():
    bricks = grid_of_1x1(3, 0) + grid_of_1x1(3, 3) + grid_of_1x1(2, 6)
    m = assign_steps(BrickModel(bricks, (3, 3, 9)))
    steps = build_steps(m)
    assert [len(s.bricks) for s in steps] == [9, 9, 4]
    assert [s.index for s in steps] == [0, 1, 2]
    assert [{b.z for b in s.bricks} for s in steps] == [{0}, {3}, {6}]
    assert steps[0].parts == {("3005", 71): 9}
    assert m.n_steps() == 3


def test_large_layer_is_split_into_coherent_chunks():
    bricks = grid_of_1x1(12)  # 144 bricks on one layer
    m = assign_steps(BrickModel(bricks, (12, 12, 3)), max_bricks_per_step=30)
    steps = build_steps(m)
    assert len(steps) >= 5
    assert all(len(s.bricks) <= 30 for s in steps)
    assert sum(len(s.bricks) for s in steps) == 144
    for s in steps:  # each chunk is a compact block, not scattered bricks
        xs = [b.x for b in s.bricks]
        ys = [b.y for b in s.bricks]
        box = (max(xs) - min(xs) + 1) * (max(ys) - min(ys) + 1)
        assert box <= 2 * len(s.bricks)


def test_steps_follow_layers_in_a_converted_model():
    g = np.ones((10, 10, 4), dtype=bool)
    m = voxels_to_bricks(g, options=ConvertOptions(max_bricks_per_step=3))
    steps = build_steps(m)
    assert len(steps) == m.n_steps() > 4
    zs = [max(b.z for b in s.bricks) for s in steps]
    assert zs == sorted(zs)
    for s in steps:
        assert len({b.z for b in s.bricks}) == 1
        assert len(s.bricks) <= 3
        assert sum(s.parts.values()) == len(s.bricks)
    # every brick sits on bricks of earlier steps (or the ground)
    step_of = {}
    for s in steps:
        for b in s.bricks:
            step_of[b] = s.index
    occ_step = np.full(m.shape, -1)
    for b, i in step_of.items():
        nx, ny = b.size
        occ_step[b.x : b.x + nx, b.y : b.y + ny, b.z : b.z + b.height] = i
    for b, i in step_of.items():
        if b.z:
            nx, ny = b.size
            under = occ_step[b.x : b.x + nx, b.y : b.y + ny, b.z - 1]
            assert (under < i).all()


def test_step_indices_validates_limit():
    with pytest.raises(ValueError, match=">= 1"):
        step_indices(np.zeros(1), np.zeros(1), np.zeros(1), np.ones(1), np.ones(1), 0)
    with pytest.raises(TypeError, match="int"):
        step_indices(np.zeros(1), np.zeros(1), np.zeros(1), np.ones(1), np.ones(1), 2.5)


def _overhang_model(steps):
    from image2lego.lego.catalogue import find

    pillar, beam, hang = find(1, 1, 3).id, find(4, 1, 1).id, find(1, 1, 1).id
    bricks = [
        Brick(0, 0, 0, pillar, False, 4, steps[0]),
        Brick(3, 0, 0, beam, False, 4, steps[2]),  # a plate over the pillar, 3 studs out
        Brick(2, 0, 3, hang, False, 4, steps[1]),  # held only by the plate above it
    ]
    return BrickModel(bricks, (4, 1, 4))


def test_a_brick_under_an_overhang_waits_for_what_it_hangs_from():
    from image2lego.lego.stability import step_stability

    layered = _overhang_model([0, 1, 2])  # the plain layer order puts it on in mid-air
    st = step_stability(layered, every="step")
    assert not st.stable and st.first_unstable == 1
    fixed = assign_steps(layered)
    step_of = {(b.z, b.x): b.step for b in fixed.bricks}
    assert step_of[(2, 3)] == step_of[(3, 0)] > step_of[(0, 0)]
    st = step_stability(fixed, every="step")
    assert st.stable and st.first_unstable is None and st.checked_steps == [0, 1]


def test_defer_to_support_keeps_floating_bricks_and_compacts_steps():
    z = np.array([0, 2, 5])
    # brick 1 hangs from brick 2 (above); brick 0 stands alone on the ground
    out = defer_to_support(np.array([0, 1, 2]), z, np.array([[1, 2]]))
    assert out.tolist() == [0, 1, 2]  # 1 and 2 float: they keep their steps
    out = defer_to_support(np.array([0, 1, 2]), z, np.array([[0, 2], [1, 2]]))
    assert out.tolist() == [0, 1, 1]  # 1 goes on with 2, which stands on 0


def _defer_reference(steps, z, edges):
    """The first, quadratic form of defer_to_support: every step rescans every pending brick."""
    n = len(steps)
    nbr = [[] for _ in range(n)]
    for a, b in edges:
        nbr[a].append(b)
        nbr[b].append(a)
    out, placed = steps.copy(), np.zeros(n, bool)
    order = np.argsort(steps, kind="stable")
    pending: list[int] = []
    for ids in np.split(order, np.flatnonzero(np.diff(steps[order])) + 1):
        s, cand = int(steps[ids[0]]), pending + ids.tolist()
        waiting = set(cand)
        queue = [i for i in cand if z[i] == 0 or any(placed[j] for j in nbr[i])]
        while queue:
            i = queue.pop()
            if not placed[i]:
                placed[i] = True
                waiting.discard(i)
                out[i] = s
                queue.extend(j for j in nbr[i] if j in waiting)
        pending = [i for i in cand if not placed[i]]
    return np.unique(out, return_inverse=True)[1]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 30).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(0, 8), min_size=n, max_size=n),
            st.lists(st.integers(0, 4), min_size=n, max_size=n),
            st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n),
        )
    )
)
def test_defer_to_support_matches_the_rescanning_reference(case):
    steps, z = np.array(case[0], dtype=np.int64), np.array(case[1], dtype=np.int64)
    e = np.array([(a, b) for a, b in case[2] if a != b], dtype=np.int64).reshape(-1, 2)
    got = defer_to_support(steps, z, e)
    assert got.tolist() == _defer_reference(steps, z, e.tolist()).tolist()


def test_defer_to_support_leaves_never_grounded_bricks_at_their_step():
    """Many steps of one grounded brick each, and a chain of bricks that never reaches the
    ground (a 64³ random fill has ~10⁴: the first form rescanned them at every step, minutes)."""
    n = 2000
    steps = np.concatenate([np.arange(n), np.full(n, 5)])
    z = np.concatenate([np.zeros(n, np.int64), np.full(n, 3)])
    edges = np.stack([np.arange(n, 2 * n - 1), np.arange(n + 1, 2 * n)], axis=1)
    out = defer_to_support(steps, z, edges)
    assert out[:n].tolist() == list(range(n)) and (out[n:] == 5).all()


def test_reordering_puts_a_pulling_overhang_on_with_what_holds_it():
    from image2lego.lego.stability import stabilise_steps, step_stability

    # a staircase of 1x8 bricks reaching out from one 1x1 pillar, one layer each, whose top
    # brick rests on a far pillar: finished it holds, but built layer by layer the fourth
    # brick pulls the cantilever apart before the top one ties it to the far pillar
    bricks = [Brick(0, 0, 0, "3005", False, 4, 0)]
    bricks += [Brick(3 * s, 0, 7 * (s - 1), "3008", False, 4, s) for s in range(1, 5)]
    bricks += [Brick(z, 0, 28, "3005", False, 4, z // 3) for z in range(0, 12, 3)]
    m = BrickModel(bricks, (30, 1, 16))
    before = step_stability(m, every="step")
    assert not before.stable and before.unstable_steps == [3]
    fixed, st, moved = stabilise_steps(m)
    assert moved == 1 and st.stable and step_stability(fixed, every="step").stable
    assert sorted((b.z, b.x, b.part_id) for b in fixed.bricks) == sorted(
        (b.z, b.x, b.part_id) for b in bricks
    )  # the same bricks, only their order changed
    step = {(b.z, b.x): b.step for b in fixed.bricks}
    assert step[(9, 14)] == step[(12, 21)] > step[(6, 7)]
    # an unstable finished model stays so (only the order is changed)
    tip = BrickModel(bricks[:5], (30, 1, 16))
    _, st2, _ = stabilise_steps(tip)
    assert not st2.stable and st2.first_unstable == st2.n_steps - 1

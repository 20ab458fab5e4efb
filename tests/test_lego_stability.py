"""Stability LP on hand-built models whose answer is known (issue 6)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from image2lego.lego.bricks import Brick, BrickModel
from image2lego.lego.catalogue import part
from image2lego.lego.stability import G, analyze_stability

SHAPE = (40, 40, 60)


def model(bricks: list[Brick]) -> BrickModel:
    return BrickModel(bricks, SHAPE)


def weight_n(pid: str) -> float:
    return part(pid).mass_g / 1000.0 * G


def test_tower_is_stable_with_no_tension():
    r = analyze_stability(model([Brick(3 * i, 0, 0, "3001") for i in range(6)]))
    assert r.stable and r.n_components == 1 and not r.unsupported
    assert r.max_stress == pytest.approx(0.0, abs=1e-9)
    assert r.status == "optimal"


def test_one_stud_cantilever_matches_lever_rule():
    # A 1x8 brick hangs on the last stud of a 1x2 on the ground. It tips about the edge of
    # that stud cell (x = 2); its weight acts 3 studs beyond the edge, the clutch pulls at
    # the stud centre 0.5 studs inside it: T = W * 3 / 0.5.
    bricks = [Brick(0, 0, 0, "3004"), Brick(3, 0, 1, "3008")]
    expected = weight_n("3008") * 3 / 0.5
    for clutch in (1.0, 0.5):
        r = analyze_stability(model(bricks), clutch_n=clutch)
        assert r.stress[1] == pytest.approx(expected / clutch, rel=1e-6)
    weak = analyze_stability(model(bricks), clutch_n=expected / 2)
    assert not weak.stable and weak.overloaded == [0, 1]
    assert weak.max_stress == pytest.approx(2.0, rel=1e-6)


def test_long_cantilever_on_one_stud_is_unstable():
    # A 24-stud beam of two bonded courses of 1x8 bricks hangs on a single stud.
    bricks = [Brick(0, 0, 0, "3005"), Brick(3, 0, 0, "3008"), Brick(3, 0, 8, "3008")]
    bricks += [Brick(3, 0, 16, "3008"), Brick(6, 0, 4, "3008"), Brick(6, 0, 12, "3008")]
    bricks += [Brick(6, 0, 20, "3010")]
    r = analyze_stability(model(bricks), clutch_n=1.0)
    assert r.n_components == 1 and not r.unsupported
    assert not r.stable and r.max_stress > 1.0
    # the overloaded connection is at the root, the single stud
    assert 0 in r.overloaded
    # with a much stronger clutch the same structure holds
    assert analyze_stability(model(bricks), clutch_n=100 * r.max_stress).stable


def test_bridge_on_two_pillars_is_stable():
    bricks = [Brick(z, 0, x, "3003") for z in (0, 3) for x in (0, 6)]
    bricks.append(Brick(6, 0, 0, "3007"))  # 2x8 across both pillars
    r = analyze_stability(model(bricks))
    assert r.stable and r.n_components == 1
    assert r.max_stress == pytest.approx(0.0, abs=1e-9)


def test_two_bricks_side_by_side_are_disconnected():
    bricks = [Brick(0, 0, 0, "3001"), Brick(0, 0, 4, "3001")]
    r = analyze_stability(model(bricks))
    assert r.n_components == 2 and sorted(map(sorted, r.components)) == [[0], [1]]
    # each stands on the baseplate, so each is held
    assert r.stable and not r.unsupported
    # side by side in the air over one pillar: only the one on the pillar is supported
    air = [Brick(0, 0, 0, "3003"), Brick(3, 0, 0, "3003"), Brick(3, 0, 2, "3003")]
    r = analyze_stability(model(air))
    assert r.n_components == 2 and r.unsupported == [2]


def test_floating_brick_is_unsupported_with_infinite_score():
    r = analyze_stability(model([Brick(0, 0, 0, "3001"), Brick(9, 5, 5, "3001")]))
    assert not r.stable and r.unsupported == [1]
    assert math.isinf(r.stress[1]) and r.stress[0] == 0.0 and math.isinf(r.max_stress)
    assert "unsupported" in r.summary()
    rgb = r.stress_rgb()
    assert rgb.shape == (2, 3) and ((rgb >= 0) & (rgb <= 1)).all()
    assert tuple(rgb[1]) == (1.0, 0.0, 1.0)  # unsupported: magenta
    assert tuple(rgb[0]) == (0.0, 1.0, 0.0)  # no stress: green


def test_ground_clutch_off_lets_an_overhang_tip():
    bricks = [Brick(0, 0, 0, "3005"), Brick(3, 0, 0, "3008")]  # 1x8 on a single 1x1
    assert analyze_stability(model(bricks), ground_clutch=True).stable
    r = analyze_stability(model(bricks), ground_clutch=False)
    assert r.unsupported == [0, 1] and not r.stable and "tip" in r.status
    # a centred load on a wide footprint needs no clutch at all
    ok = [Brick(0, 0, 0, "3001"), Brick(3, 0, 0, "3001")]
    assert analyze_stability(model(ok), ground_clutch=False).max_stress == pytest.approx(0.0)


def test_max_objective_agrees_on_the_verdict():
    bricks = [Brick(0, 0, 0, "3004"), Brick(3, 0, 1, "3008"), Brick(6, 0, 6, "3008")]
    a = analyze_stability(model(bricks), objective="sum")
    b = analyze_stability(model(bricks), objective="max")
    assert a.stable == b.stable
    assert b.max_stress <= a.max_stress + 1e-9


def test_critical_connections_are_the_binding_ones():
    # Two cantilevers of different weight on one tower: the heavier arm's connection sets
    # the worst utilisation; the LP duals single it out and sum to 1 (d max / d max).
    m = BrickModel(
        [Brick(0, 0, 0, "3003"), Brick(3, 0, 0, "3008"), Brick(3, 1, 0, "3010")], (8, 2, 6)
    )
    r = analyze_stability(m, objective="max")
    assert not r.unsupported and r.max_stress > 0
    util = r.tension_n / r.clutch_n
    assert r.critical.shape == util.shape and (r.critical >= 0).all()
    assert r.critical.sum() == pytest.approx(1.0, abs=1e-6)
    binding = r.critical > 1e-9
    assert binding.any() and np.allclose(util[binding], util.max())
    heavy_arm = 1  # the 1x8: its connection to the base binds, the 1x4's does not
    assert set(r.contacts.upper[binding].tolist()) == {heavy_arm}
    # the default objective on a stable model needs no min-max solve: no duals
    assert not analyze_stability(BrickModel([Brick(0, 0, 0, "3001")], (4, 2, 3))).critical.any()


def test_bad_input_is_rejected_clearly():
    with pytest.raises(ValueError, match="clutch_n"):
        analyze_stability(model([Brick(0, 0, 0, "3001")]), clutch_n=0)
    with pytest.raises(ValueError, match="objective"):
        analyze_stability(model([Brick(0, 0, 0, "3001")]), objective="median")
    with pytest.raises(ValueError, match="overlap"):
        analyze_stability(model([Brick(0, 0, 0, "3001"), Brick(0, 0, 1, "3001")]))


def test_empty_model():
    r = analyze_stability(BrickModel([], (1, 1, 1)))
    assert r.stable and r.n_components == 0 and len(r.stress) == 0


@st.composite
def supported_stacks(draw):
    """Random models in which every brick's whole footprint rests on bricks or the ground."""
    nx, ny = draw(st.integers(4, 10)), draw(st.integers(4, 10))
    height = np.zeros((nx, ny), int)  # top plate of each column so far
    bricks = []
    for _ in range(draw(st.integers(1, 25))):
        pid = draw(st.sampled_from(["3005", "3004", "3003", "3001", "3024", "3023", "3020"]))
        rot = draw(st.booleans())
        p = part(pid)
        sx, sy = (p.width, p.length) if rot else (p.length, p.width)
        if sx > nx or sy > ny:
            continue
        x, y = draw(st.integers(0, nx - sx)), draw(st.integers(0, ny - sy))
        under = height[x : x + sx, y : y + sy]
        if under.min() != under.max():  # would leave a gap under part of the brick
            continue
        z = int(under.max())
        bricks.append(Brick(z, y, x, pid, rot))
        height[x : x + sx, y : y + sy] = z + p.height
    return BrickModel(bricks, (nx, ny, int(height.max()) + 1))


@settings(max_examples=40, deadline=None)
@given(supported_stacks(), st.integers(0, 5), st.integers(0, 5))
def test_fully_supported_stacks_need_no_clutch(m, dx, dy):
    # Every load falls inside a footprint that is itself fully supported, so compression
    # alone balances it: no tension anywhere, and moving the model changes nothing.
    if not m.bricks:
        return
    r = analyze_stability(m, ground_clutch=False)
    assert r.stable and not r.unsupported
    assert r.max_stress == pytest.approx(0.0, abs=1e-6)
    moved = BrickModel(
        [Brick(b.z, b.y + dy, b.x + dx, b.part_id, b.rotated) for b in m.bricks],
        (m.shape[0] + dx, m.shape[1] + dy, m.shape[2]),
    )
    assert analyze_stability(moved).n_components == r.n_components


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 8), st.floats(0.2, 5.0))
def test_stress_scales_inversely_with_clutch(length, clutch):
    # a 1xL plate cantilevered from one stud of a 1x1 brick
    pid = {2: "3023", 3: "3623", 4: "3710", 6: "3666", 8: "3460"}.get(length, "3710")
    bricks = [Brick(0, 0, 0, "3005"), Brick(3, 0, 0, pid)]
    a = analyze_stability(model(bricks), clutch_n=1.0)
    b = analyze_stability(model(bricks), clutch_n=clutch)
    assert b.max_stress == pytest.approx(a.max_stress / clutch, rel=1e-5, abs=1e-9)
    assert b.stable == (a.max_stress / clutch <= 1.0 + 1e-9)


@st.composite
def overhanging_stacks(draw, repeat: float = 0.0):
    """Random models where bricks rest on the highest column under them: overhangs and
    cantilevers of every length, some held, some not. With ``repeat`` > 0 that share of the
    bricks are drawn as copies of an earlier brick's footprint (stacked towers: bricks held
    by compression alone)."""
    nx, ny = draw(st.integers(3, 8)), draw(st.integers(2, 6))
    height = np.zeros((nx, ny), int)
    bricks = []
    for _ in range(draw(st.integers(1, 14))):
        if bricks and repeat and draw(st.floats(0, 1)) < repeat:
            b = draw(st.sampled_from(bricks))
            pid, rot, x, y = b.part_id, b.rotated, b.x, b.y
            p = part(pid)
            sx, sy = (p.width, p.length) if rot else (p.length, p.width)
            z = int(height[x : x + sx, y : y + sy].max())
            bricks.append(Brick(z, y, x, pid, rot))
            height[x : x + sx, y : y + sy] = z + p.height
            continue
        pid = draw(st.sampled_from(["3005", "3004", "3010", "3008", "3023", "3710", "3020"]))
        rot = draw(st.booleans())
        p = part(pid)
        sx, sy = (p.width, p.length) if rot else (p.length, p.width)
        if sx > nx or sy > ny:
            continue
        x, y = draw(st.integers(0, nx - sx)), draw(st.integers(0, ny - sy))
        z = int(height[x : x + sx, y : y + sy].max())
        bricks.append(Brick(z, y, x, pid, rot))
        height[x : x + sx, y : y + sy] = z + p.height
    return BrickModel(bricks, (nx, ny, int(height.max()) + 1))


@settings(max_examples=60, deadline=None)
@given(overhanging_stacks(), st.sampled_from([0.02, 0.05, 0.2, 1.0]), st.booleans())
def test_default_verdict_equals_the_min_max_lp(m, clutch, ground_clutch):
    # The default analysis decides most models with one capacity-bounded LP; the min-max LP
    # is an independent formulation: both must give the same verdict and the same
    # unsupported bricks, and the default's scores stay within capacity when stable.
    a = analyze_stability(m, clutch_n=clutch, ground_clutch=ground_clutch)
    b = analyze_stability(m, clutch_n=clutch, ground_clutch=ground_clutch, objective="max")
    assert a.stable == b.stable
    assert a.unsupported == b.unsupported
    if a.stable:
        assert a.max_stress <= 1.0
    else:
        assert b.max_stress > 1.0 - 1e-6


def test_default_scores_of_a_stable_model_reach_one_where_the_least_pull_would_overload():
    # A tower on a 1x2 footing carrying a side-long 1x4 at clutch 0.02 N: the least-tension
    # equilibrium without bounds overloads a stud, one within capacity exists. The default LP
    # (bounded) says stable with scores capped at exactly 1 on the studs at their limit; the
    # min-max LP says how much margin the model has at best (what Blender then shows).
    bricks = [
        Brick(0, 1, 0, "3004", True),
        Brick(3, 0, 0, "3020", True),
        Brick(4, 0, 1, "3010", True),
        Brick(7, 0, 1, "3010", True),
        Brick(10, 1, 1, "3023", False),
        Brick(4, 3, 0, "3005", False),
    ]
    m = BrickModel(bricks, (3, 4, 12))
    a = analyze_stability(m, clutch_n=0.02)
    b = analyze_stability(m, clutch_n=0.02, objective="max")
    assert a.stable and b.stable
    assert a.max_stress == 1.0 and not a.overloaded
    assert 0.5 < b.max_stress < 0.7
    # at half that clutch no equilibrium holds: the unbounded scores say by how much
    c = analyze_stability(m, clutch_n=0.01)
    assert not c.stable and c.overloaded and c.max_stress > 1.0


@settings(max_examples=40, deadline=None)
@given(
    overhanging_stacks(repeat=0.6),
    st.sampled_from([0.02, 0.2, 1.0]),
    st.randoms(use_true_random=False),
)
def test_step_stability_equals_analysing_every_built_model(m, clutch, rnd):
    # step_stability analyses the built-so-far models from the whole model's contacts and
    # skips the LP where the new bricks rest fully on bricks that rest fully down to the
    # ground; both must give exactly what analyze_stability says of each built model.
    from image2lego.lego.stability import step_stability

    n_steps = rnd.randint(1, max(1, len(m.bricks)))
    bricks = [
        dataclasses.replace(b, step=rnd.randrange(n_steps))
        if rnd.random() < 0.3
        else dataclasses.replace(b, step=min(n_steps - 1, b.z // 3))
        for b in m.bricks
    ]
    m = BrickModel(bricks, m.shape)
    got = step_stability(m, clutch_n=clutch, every="step")
    steps = sorted({b.step for b in bricks})
    want = []
    for k, s in enumerate(steps):
        r = analyze_stability(BrickModel([b for b in bricks if b.step <= s], m.shape), clutch)
        if not r.stable:
            want.append(k)
    assert got.unstable_steps == want
    assert got.checked_steps == list(range(len(steps)))


@settings(max_examples=80, deadline=None)
@given(overhanging_stacks(), st.sampled_from([0.01, 0.02, 0.05, 0.2, 1.0]), st.booleans())
def test_pair_wrench_verdict_equals_the_per_stud_lp(m, clutch, ground_clutch):
    # The pair-wrench program (every stud at full pull + pushes over each contact face) is
    # exact: it is feasible exactly when the per-stud capacity-bounded LP is.
    from image2lego.lego import stability as S

    arr = S.brick_arrays(m)
    c = S.find_contacts(m, arr)
    labels = S._pieces(len(arr["x"]), c)
    active = np.isin(labels, labels[arr["z"] == 0])
    if not active.any():
        return
    cl = np.full(len(c.upper), clutch)
    per_stud = S._solve(arr, c, active, cl, ground_clutch, "capped", "highs-ds")[0].status
    assert per_stud in (0, 2)
    assert S._pair_verdict(arr, c, active, cl, ground_clutch) == per_stud


def test_pair_wrench_verdict_on_the_lever_rule():
    # The 1x8 on one stud of a 1x2 needs W * 3 / 0.5 of clutch: stable just above, not below.
    from image2lego.lego import stability as S

    m = model([Brick(0, 0, 0, "3004"), Brick(3, 0, 1, "3008")])
    need = weight_n("3008") * 3 / 0.5
    arr = S.brick_arrays(m)
    c = S.find_contacts(m, arr)
    active = np.ones(2, bool)
    for clutch, want in ((need * 1.01, 0), (need * 0.99, 2)):
        cl = np.full(len(c.upper), clutch)
        assert S._pair_verdict(arr, c, active, cl, True) == want


def test_analysis_stops_at_its_budget_with_a_clear_error():
    from image2lego.lego.stability import StabilityBudgetError

    bricks = [Brick(0, 0, 0, "3005"), Brick(3, 0, 0, "3008"), Brick(3, 0, 8, "3008")]
    with pytest.raises(StabilityBudgetError, match="did not finish within its budget"):
        analyze_stability(model(bricks), time_budget_s=1e-9)
    with pytest.raises(ValueError, match="time_budget_s"):
        analyze_stability(model(bricks), time_budget_s=0)
    assert analyze_stability(model(bricks), time_budget_s=None).stable is not None


@settings(max_examples=40, deadline=None)
@given(overhanging_stacks(), st.sampled_from([0.01, 0.02, 0.05]))
def test_pair_wrench_least_pull_is_a_valid_fallback(m, clutch):
    # The fallback scores (each pair's studs pulling alike) overload a stud exactly when the
    # model is not stable, and never claim less than the min-max equilibrium needs.
    from image2lego.lego import stability as S

    arr = S.brick_arrays(m)
    c = S.find_contacts(m, arr)
    labels = S._pieces(len(arr["x"]), c)
    active = np.isin(labels, labels[arr["z"] == 0])
    if not active.any():
        return
    st_, t = S._pair_lp(arr, c, active, np.full(len(c.upper), clutch), True, unbounded=True)
    assert st_ == 0 and t is not None
    worst = float((t / clutch).max()) if len(t) else 0.0
    b = analyze_stability(m, clutch_n=clutch, objective="max")
    finite = b.stress[np.isfinite(b.stress)]
    assert worst >= (finite.max() if finite.size else 0.0) - 1e-6
    if not b.stable and not b.unsupported:
        assert worst > 1.0


@settings(max_examples=60, deadline=None)
@given(overhanging_stacks(), st.sampled_from([0.01, 0.02, 0.05, 0.2, 1.0]), st.booleans())
def test_the_verdict_precheck_changes_nothing_but_time(m, clutch, ground_clutch):
    # From PRECHECK_MIN_BRICKS up the capped LP's verdict comes first from the interior point
    # without crossover and the pair-wrench program: the report must be the same.
    from image2lego.lego import stability as S

    old = S.PRECHECK_MIN_BRICKS
    try:
        S.PRECHECK_MIN_BRICKS = 0
        a = analyze_stability(m, clutch_n=clutch, ground_clutch=ground_clutch)
    finally:
        S.PRECHECK_MIN_BRICKS = old
    b = analyze_stability(m, clutch_n=clutch, ground_clutch=ground_clutch)
    assert (a.stable, a.unsupported, a.overloaded, a.status) == (
        b.stable,
        b.unsupported,
        b.overloaded,
        b.status,
    )
    np.testing.assert_allclose(a.stress, b.stress, rtol=1e-7, atol=1e-9)

"""Repair of disconnected / unstable layouts (issue 6): cover kept, failures reported."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from image2lego.lego.bricks import Brick, BrickModel
from image2lego.lego.catalogue import part
from image2lego.lego.convert import ConvertOptions, voxels_to_bricks
from image2lego.lego.repair import RepairReport, repair
from image2lego.lego.stability import G, analyze_stability


def test_grounded_but_split_layout_gets_connected_with_the_same_cells():
    # Two 1x2 columns side by side, stacked straight: 2 pieces although the cells are one.
    m = BrickModel(
        [Brick(0, 0, 0, "3004"), Brick(0, 0, 2, "3004"), Brick(3, 0, 0, "3004")]
        + [Brick(3, 0, 2, "3004")],
        (4, 1, 6),
    )
    assert analyze_stability(m).n_components == 2
    fixed, rep = repair(m)
    assert isinstance(rep, RepairReport)
    assert rep.before.n_components == 2 and rep.after.n_components == 1
    assert rep.connected and rep.stable and not rep.unrepairable
    assert np.array_equal(fixed.occupancy(), m.occupancy())
    assert analyze_stability(fixed).n_components == 1
    # the caller's model is untouched
    assert len(m) == 4 and "stability" not in m.meta


def test_brick_hanging_sideways_is_joined_and_supported():
    # The top-right 1x2 touches the rest only sideways: unsupported before repair.
    m = BrickModel(
        [Brick(0, 0, 0, "3004"), Brick(3, 0, 0, "3004"), Brick(3, 0, 2, "3004")], (4, 1, 6)
    )
    fixed, rep = repair(m)
    assert len(rep.before.unsupported) == 1 and not rep.before.stable
    assert rep.after.unsupported == () and rep.after.stable and rep.after.n_components == 1
    assert np.array_equal(fixed.occupancy(), m.occupancy())
    assert "before:" in rep.summary() and "after:" in rep.summary()


def test_floating_piece_is_reported_not_passed():
    m = BrickModel([Brick(0, 0, 0, "3001"), Brick(9, 0, 0, "3001")], (4, 2, 12))
    fixed, rep = repair(m)
    assert not rep.stable and rep.after.unsupported
    assert [i for i, _ in rep.unrepairable] == list(rep.after.unsupported)
    assert all("floating" in why for _, why in rep.unrepairable)
    text = rep.summary()
    assert "could NOT fix" in text and "floating" in text
    assert np.array_equal(fixed.occupancy(), m.occupancy())


def test_impossible_cantilever_is_reported_with_the_force_it_needs():
    # A 1x8 beam one brick thick, held by a single 1x1 brick at one end: no re-tiling of
    # these cells can carry it at a clutch of 0.05 N.
    m = BrickModel([Brick(0, 0, 0, "3005"), Brick(3, 0, 0, "3008")], (8, 1, 6))
    fixed, rep = repair(m, clutch_n=0.05, time_budget_s=20, reinforce=False)
    assert not rep.stable and rep.after.n_overloaded > 0
    assert rep.unrepairable and all("cantilever" in why for _, why in rep.unrepairable)
    assert "needs ~" in rep.summary() and "0.05 N" in rep.summary()
    assert np.array_equal(fixed.occupancy(), m.occupancy())
    assert fixed.meta["stability"]["stable"] is False
    # lever rule: the beam's weight acts 3 studs beyond the tipping edge, the stud pulls
    # 0.5 studs inside it, so the connection needs 6 x the beam's weight of clutch
    w = part("3008").mass_g / 1000.0 * G
    assert rep.required_clutch_n == pytest.approx(6 * w, rel=1e-4)
    assert "would hold with a clutch of" in rep.summary()


def test_reinforce_props_up_the_cantilever_with_few_visible_cells():
    # The same impossible beam: with reinforce on, repair stands 1x1 props under it (this
    # toy needs more than the default 8 % of its cells).
    m = BrickModel([Brick(0, 0, 0, "3005"), Brick(3, 0, 0, "3008")], (8, 1, 6))
    fixed, rep = repair(m, clutch_n=0.05, time_budget_s=20, max_added_fraction=0.5)
    assert rep.stable and not rep.unrepairable and rep.required_clutch_n is None
    before, after = m.occupancy(), fixed.occupancy()
    assert after[before].all()  # nothing removed
    added = after & ~before
    # props stand on the ground under the beam (x 1..7), below it (z < 3), nowhere else
    assert added.any() and not added[0].any() and not added[:, :, 3:].any()
    assert added.sum() == rep.added_cells <= int(0.5 * before.sum())
    assert rep.reinforcement_bricks == len(fixed) - len(m)
    new = [b for b in fixed.bricks if b.x != 0 or b.z != 0]
    new = [b for b in new if b.part_id != "3008"]
    assert new and all(b.size == (1, 1) for b in new)
    assert "reinforced:" in rep.summary() and fixed.meta["stability"]["added_cells"] > 0
    assert analyze_stability(fixed, clutch_n=0.05).stable


def test_reinforce_respects_the_cell_budget():
    m = BrickModel([Brick(0, 0, 0, "3005"), Brick(3, 0, 0, "3008")], (8, 1, 6))
    _, rep = repair(m, clutch_n=0.05, time_budget_s=20, max_added_fraction=0.0)
    assert not rep.stable and rep.added_cells == 0 and rep.unrepairable
    with pytest.raises(ValueError, match="max_added_fraction"):
        repair(m, max_added_fraction=1.5)


def test_floating_parts_get_no_props():
    m = BrickModel([Brick(0, 0, 0, "3001"), Brick(9, 0, 0, "3001")], (4, 2, 12))
    fixed, rep = repair(m, clutch_n=0.05, max_added_fraction=1.0)
    assert rep.added_cells == 0 and np.array_equal(fixed.occupancy(), m.occupancy())


def test_stable_model_is_left_alone():
    m = BrickModel([Brick(3 * i, 0, 0, "3001") for i in range(4)], (4, 2, 12))
    fixed, rep = repair(m)
    assert rep.iterations == 0 and rep.changes == 0 and rep.stable
    assert fixed.bricks == m.bricks


def _chair_like() -> np.ndarray:
    g = np.zeros((8, 8, 10), bool)
    for x, y in ((0, 0), (0, 7), (7, 0), (7, 7)):
        g[x, y, :4] = True  # legs
    g[:, :, 4] = True  # seat
    g[:, 7, 5:] = True  # back
    g[3:5, 0:3, 5] = True  # a lump on the seat
    return g


def test_repair_is_deterministic():
    m = voxels_to_bricks(_chair_like())
    # use a weak clutch so that repair has work to do
    a, ra = repair(m, seed=3, clutch_n=0.02, max_iterations=3, time_budget_s=1e9)
    b, rb = repair(m, seed=3, clutch_n=0.02, max_iterations=3, time_budget_s=1e9)
    assert a.bricks == b.bricks
    assert ra.after == rb.after and ra.unrepairable == rb.unrepairable


def test_shell_gets_hidden_interior_support_only_inside():
    g = np.ones((16, 16, 6), bool)
    m = voxels_to_bricks(g, options=ConvertOptions(hollow="shell", supports=False))
    assert not analyze_stability(m, clutch_n=0.1).stable
    fixed, rep = repair(m, clutch_n=0.1, time_budget_s=1e9)
    assert rep.stable and rep.support_bricks > 0
    before, after = m.occupancy(), fixed.occupancy()
    assert (after[before]).all()  # every visible cell is still there
    added = after & ~before
    assert added.any()
    # added cells are enclosed: never on the outer surface of the box
    assert not added[[0, -1], :, :].any() and not added[:, [0, -1], :].any()
    assert not added[:, :, -1].any()


def test_bad_arguments():
    m = BrickModel([Brick(0, 0, 0, "3001")], (4, 2, 3))
    with pytest.raises(TypeError, match="BrickModel"):
        repair([Brick(0, 0, 0, "3001")])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_iterations"):
        repair(m, max_iterations=-1)


def _random_grid(seed: int, shape, fill: float, ground: float) -> np.ndarray:
    """A random occupancy grid with extra cells on the ground layer."""
    rng = np.random.default_rng(seed)
    g = rng.random(shape) < fill
    g[:, :, 0] |= rng.random(shape[:2]) < ground
    return g


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_repair_never_changes_the_cover(seed):
    g = _random_grid(seed, (6, 6, 5), 0.55, 0.5)
    if not g.any():
        return
    m = voxels_to_bricks(g)
    fixed, rep = repair(m, seed=seed % 7, max_iterations=2, time_budget_s=20, reinforce=False)
    assert np.array_equal(fixed.occupancy(), m.occupancy())
    # the report describes the returned model
    r = analyze_stability(fixed)
    assert r.stable == rep.after.stable and r.n_components == rep.after.n_components
    assert sorted(i for i, _ in rep.unrepairable) == sorted(set(r.unsupported) | set(r.overloaded))


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.01, 0.3))
@pytest.mark.slow
def test_reinforce_only_adds_props_within_budget(seed, frac):
    g = _random_grid(seed, (6, 6, 6), 0.5, 0.3)
    if not g.any():
        return
    m = voxels_to_bricks(g)
    fixed, rep = repair(m, clutch_n=0.02, max_iterations=3, time_budget_s=20,
                        max_added_fraction=frac)  # fmt: skip
    before, after = m.occupancy(), fixed.occupancy()
    assert after[before].all()
    added = after & ~before
    assert added.sum() == rep.added_cells <= int(frac * before.sum())
    # props hold something up: every added cell has a filled cell directly above it
    x, y, z = np.nonzero(added)
    assert (z + 1 < after.shape[2]).all() and after[x, y, z + 1].all()
    assert rep.after.stable == analyze_stability(fixed, clutch_n=0.02).stable


def test_warnings_describe_the_repaired_model_not_the_converted_one():
    bricks = [Brick(0, 0, 0, "3004"), Brick(3, 0, 0, "3004"), Brick(3, 0, 2, "3004")]
    meta = {
        "warnings": ["1 brick(s) are not connected to the ground layer", "a note"],
        "connected": False,
        "connectivity": {"n_components": 2, "n_ungrounded": 1},
    }
    m = BrickModel(bricks, (4, 1, 6), meta)
    fixed, rep = repair(m)
    assert rep.stable and rep.before.unsupported
    assert fixed.meta["warnings"] == ["a note"]
    assert fixed.meta["connected"] and fixed.meta["connectivity"]["n_components"] == 1
    assert fixed.meta["connectivity"]["n_ungrounded"] == 0
    assert m.meta["warnings"][0].startswith("1 brick") and not m.meta["connected"]  # untouched
    # a floating piece stays reported, counted on the repaired model
    m = BrickModel([Brick(0, 0, 0, "3001"), Brick(9, 0, 0, "3001")], (4, 2, 12), {"warnings": []})
    fixed, rep = repair(m)
    n = len(rep.after.unsupported)
    assert fixed.meta["warnings"] == [
        f"{n} brick(s) are not connected to the ground layer (after repair)"
    ]


def test_build_options_travel_typed_with_the_model_through_every_stage():
    from image2lego.lego.convert import ConvertOptions
    from image2lego.lego.repair import RepairOptions
    from image2lego.lego.stability import stabilise_steps
    from image2lego.lego.steps import assign_steps

    opts = ConvertOptions(hollow="shell", brick_types="bricks", max_bricks_per_step=7)
    typed = RepairOptions.from_convert(opts)
    assert typed == RepairOptions(shell=True, may_demote=False, max_bricks_per_step=7)
    g = np.zeros((6, 6, 6), bool)
    g[1:5, 1:5, 0:5] = True
    m = voxels_to_bricks(g, options=opts)
    assert m.options == opts and RepairOptions.of(m) == typed
    fixed, _ = repair(m)
    stepped = assign_steps(fixed, 3)
    reordered = stabilise_steps(stepped)[0]
    for later in (fixed, stepped, reordered):
        assert later.options == opts and later is not m
    # a model without options (read from LDraw, or with options in meta only) gets defaults:
    # meta is provenance for reports, never read back as options
    assert RepairOptions.of(BrickModel([], (1, 1, 1))) == RepairOptions()
    dict_only = BrickModel([], (1, 1, 1), {"options": {"hollow": "shell"}})
    assert RepairOptions.of(dict_only) == RepairOptions()
    with pytest.raises(TypeError, match="RepairOptions"):
        repair(m, options={"hollow": "shell"})  # type: ignore[arg-type]


def test_build_options_kept_as_a_dict_come_back_typed_or_not_at_all():
    from dataclasses import asdict

    from image2lego.lego.convert import ConvertOptions

    opts = ConvertOptions(hollow="shell", color_mode="photo", palette=[4, 15], k=2)
    assert ConvertOptions.from_dict(asdict(opts)) == opts
    assert ConvertOptions.from_dict({**asdict(opts), "from_a_newer_version": 1}) == opts
    assert ConvertOptions.from_dict({"hollow": "shell"}) == ConvertOptions(hollow="shell")
    for bad in (None, [], "fill", {"max_bricks_per_step": "9"}, {"hollow": 3}, {"k": 0}):
        assert ConvertOptions.from_dict(bad) is None, bad


def test_repair_shares_one_analysis_budget(monkeypatch):
    # A model whose analysis cannot finish in the run's budget ends with the one-line
    # StabilityBudgetError, not minutes of LPs; candidates over what is left are rejected.
    from image2lego.lego import repair as repair_mod
    from image2lego.lego.stability import StabilityBudgetError

    m = BrickModel([Brick(0, 0, 0, "3005"), Brick(3, 0, 0, "3008")], (10, 2, 8))
    monkeypatch.setattr(repair_mod, "ANALYSIS_BUDGET_S", 1e-9)
    with pytest.raises(StabilityBudgetError, match="within its budget"):
        repair(m)

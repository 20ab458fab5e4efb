"""benchmarks/eval_model.py: the model-level bootstrap interval quoted in the model card."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .conftest import REPO

_spec = importlib.util.spec_from_file_location("eval_model", REPO / "benchmarks/eval_model.py")
eval_model = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eval_model)
bootstrap_ci = eval_model.bootstrap_ci


@settings(max_examples=30, deadline=None)
@given(
    per_model=st.lists(st.floats(0, 1), min_size=2, max_size=30),
    rotations=st.integers(1, 12),
)
def test_interval_brackets_the_mean(per_model, rotations):
    values = np.repeat(per_model, rotations) + np.tile(np.linspace(-0.01, 0.01, rotations),
                                                       len(per_model))  # fmt: skip
    groups = np.repeat(np.arange(len(per_model)), rotations)
    lo, hi = bootstrap_ci(values, groups, n=500)
    assert lo <= hi
    assert lo - 1e-9 <= values.mean() <= hi + 1e-9 or np.ptp(per_model) < 1e-6


def test_constant_values_give_a_point():
    assert bootstrap_ci(np.full(24, 0.6), np.repeat(np.arange(2), 12)) == pytest.approx((0.6, 0.6))


def test_rotations_of_one_model_are_not_counted_as_independent():
    """12 identical rows per model carry the information of one row, not twelve."""
    rng = np.random.default_rng(3)
    per_model = rng.uniform(0.3, 0.9, 89)
    rows = np.repeat(per_model, 12)
    by_model = bootstrap_ci(rows, np.repeat(np.arange(89), 12))
    one_row_each = bootstrap_ci(per_model, np.arange(89))
    as_if_independent = bootstrap_ci(rows, np.arange(rows.size))
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(by_model) == pytest.approx(width(one_row_each), rel=0.15)
    assert width(as_if_independent) < 0.5 * width(by_model)


_spec2 = importlib.util.spec_from_file_location(
    "eval_offpose_frame", REPO / "benchmarks/eval_offpose_frame.py"
)
offpose_frame = importlib.util.module_from_spec(_spec2)
_spec2.loader.exec_module(offpose_frame)


def _l_shape() -> np.ndarray:
    """An asymmetric L (a seat and a back at +Y), so every quarter turn differs."""
    g = np.zeros((32, 32, 32), dtype=bool)
    g[10:22, 10:22, 8:11] = True
    g[10:22, 19:22, 11:24] = True
    return g


def test_turn_is_counterclockwise_seen_from_above_and_inverts():
    g = _l_shape()
    t90 = offpose_frame.turn(g, 90)
    # the back at +Y goes to -X under a counter-clockwise quarter turn about Z
    assert t90[10:13, 10:22, 11:24].all() and not t90[19:22, 10:22, 11:24].any()
    assert np.array_equal(offpose_frame.turn(t90, -90), g)
    assert offpose_frame._iou(offpose_frame.turn(offpose_frame.turn(g, 30), -30), g) > 0.8
    # the resampled 30-degree turns go the same way as the exact quarter turns
    t3 = offpose_frame.turn(offpose_frame.turn(offpose_frame.turn(g, 30), 30), 30)
    assert offpose_frame._iou(t3, t90) > 0.7 > offpose_frame._iou(t3, offpose_frame.turn(g, -90))


def test_frame_scores_tells_the_object_frame_from_the_viewer_frame():
    vox = np.stack([_l_shape(), np.roll(_l_shape(), 3, axis=2)])
    targets = {t: np.stack([offpose_frame.turn(v, t) for v in vox]) for t in offpose_frame.TURNS}
    canon = offpose_frame.frame_scores(vox, targets, daz=-60)
    assert canon["canonical"] == 1.0 and canon["viewer"] < 0.6 and canon["best_turn"] == {0: 2}
    # a camera turned by -60 degrees sees the object turned by +60: a viewer-centred prediction
    seen = np.stack([offpose_frame.turn(v, 60) for v in vox])
    view = offpose_frame.frame_scores(seen, targets, daz=-60)
    assert view["viewer"] == 1.0 and view["canonical"] < 0.6 and view["best_turn"] == {60: 2}
    assert view["best_of_12"] == 1.0

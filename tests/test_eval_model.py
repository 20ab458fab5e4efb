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

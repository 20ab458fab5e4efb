"""core.pieces.connect_pieces: floating pieces joined through near-kept cells or dropped."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from image2lego.core.pieces import connect_pieces

THR = -1.0
LOW = -20.0  # a pruned cell


def _grid(n: int = 12) -> np.ndarray:
    return np.full((n, n, n), LOW, dtype=np.float32)


def _pieces(g: np.ndarray) -> int:
    return ndimage.label(g)[1]


def test_a_near_kept_gap_is_bridged_by_its_most_confident_cells():
    lg = _grid()
    lg[1:6, 1:6, 1:6] = 3.0  # the body
    lg[8:10, 2:4, 2:4] = 3.0  # a leg, two cells away
    lg[6:8, 2, 2] = THR - 0.5  # a path just under the threshold
    lg[6:8, 3, 3] = THR - 0.9  # a less confident one beside it
    out = connect_pieces(lg, THR, margin=1.0)
    assert _pieces(out) == 1
    added = out & ~(lg > THR)
    assert added.sum() == 2 and added[6:8, 2, 2].all(), "the shortest, most confident path"
    assert out[8:10, 2:4, 2:4].all(), "the leg stays"


def test_an_unreachable_speck_is_dropped_and_a_large_part_kept():
    lg = _grid(16)
    lg[1:9, 1:9, 1:9] = 3.0  # body, 512 cells
    lg[12, 12, 12] = 3.0  # speck: no near-kept cell reaches it
    lg[12:15, 1:5, 1:5] = 3.0  # 48 cells = 8.5 % of the grid's cells: a real part
    out = connect_pieces(lg, THR, margin=1.0)
    assert not out[12, 12, 12]
    assert out[12:15, 1:5, 1:5].all() and out[1:9, 1:9, 1:9].all()
    assert _pieces(out) == 2
    # with keep_share above its share the part goes too
    assert _pieces(connect_pieces(lg, THR, margin=1.0, keep_share=0.2)) == 1


def test_one_piece_and_empty_grids_pass_through():
    lg = _grid()
    assert not connect_pieces(lg, THR).any()
    lg[2:5, 2:5, 2:5] = 1.0
    np.testing.assert_array_equal(connect_pieces(lg, THR), lg > THR)
    # cells the decoder never computed stay empty, even under a threshold below their logit
    assert not (connect_pieces(lg, -50.0, pruned=LOW) & (lg <= LOW)).any()
    with pytest.raises(ValueError, match="margin"):
        connect_pieces(lg, THR, margin=-1.0)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.0, 3.0))
def test_result_is_the_body_plus_near_kept_cells(seed, margin):
    rng = np.random.default_rng(seed)
    lg = ndimage.gaussian_filter(rng.normal(size=(10, 10, 10)), 1.0).astype(np.float32) * 6
    strong = lg > 0.0
    out = connect_pieces(lg, 0.0, margin=margin, keep_share=1.0)
    if not strong.any():
        assert not out.any()
        return
    assert _pieces(out) == 1, "keep_share=1: always one piece"
    lab, _ = ndimage.label(strong)
    sizes = np.bincount(lab.ravel())[1:]
    assert out.sum() >= sizes.max(), "the main body stays"
    assert (lg[out & ~strong] > -margin).all(), "only near-kept cells are added"

"""Ray-cast visibility masks (lego/visibility.py): exact against brute force, a partition of
the image, occlusion; the Blender ID-render comparison lives in test_blender_instructions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from image2lego.lego.bricks import Brick, BrickModel
from image2lego.lego.catalogue import CATALOGUE
from image2lego.lego.units import STUD_DIAMETER_MM, STUD_HEIGHT_MM
from image2lego.lego.visibility import (
    M_PER_MM,
    OrthoView,
    _hit_box,
    _hit_studs,
    brick_bodies,
    front_mask,
    stud_centres,
)


def _view(model, elevation, azimuth, res=(64, 48)):
    """An orthographic camera looking at the whole model from (elevation, azimuth)."""
    lo, hi = brick_bodies(model)
    top = hi.max(axis=0) + [0, 0, STUD_HEIGHT_MM * M_PER_MM]
    centre = (lo.min(axis=0) + top) / 2
    el, az = math.radians(elevation), math.radians(azimuth)
    back = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    right = np.cross(-back, [0, 0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, -back)
    extent = float(np.linalg.norm(top - lo.min(axis=0)))
    return OrthoView(centre + back * 2 * extent, np.stack([right, up, back], 1), extent, res)


def _brute(model, view, wanted, present):
    """Every pixel against every present brick and every stud: no culling, no stud grid."""
    w, h = view.resolution
    cols, rows = np.meshgrid(np.arange(w), np.arange(h))
    ps = view.pixel_size
    u, v = (cols.ravel() + 0.5 - w / 2) * ps, (h / 2 - (rows.ravel() + 0.5)) * ps
    o = view.location + u[:, None] * view.basis[:, 0] + v[:, None] * view.basis[:, 1]
    d = -view.basis[:, 2]
    lo, hi = brick_bodies(model)
    r, sh = STUD_DIAMETER_MM / 2 * M_PER_MM, STUD_HEIGHT_MM * M_PER_MM
    best_new, best_old = np.full(len(o), np.inf), np.full(len(o), np.inf)
    for i in np.flatnonzero(present):
        t = np.minimum(
            _hit_box(o, d, lo[i], hi[i]),
            _hit_studs(o, d, stud_centres(model, i), hi[i, 2], hi[i, 2] + sh, r),
        )
        if wanted[i]:
            best_new = np.minimum(best_new, t)
        else:
            best_old = np.minimum(best_old, t)
    return (np.isfinite(best_new) & (best_new <= best_old)).reshape(h, w)


PARTS = sorted(CATALOGUE)


@st.composite
def models(draw):
    """Up to 7 catalogue bricks at random places that do not overlap."""
    taken = np.zeros((16, 16, 16), bool)
    bricks = []
    for _ in range(draw(st.integers(1, 7))):
        pid = draw(st.sampled_from(PARTS))
        b = Brick(
            draw(st.integers(0, 6)), draw(st.integers(0, 6)), draw(st.integers(0, 6)),
            pid, draw(st.booleans()), 4, draw(st.integers(0, 2)),
        )  # fmt: skip
        nx, ny = b.size
        cells = (slice(b.x, b.x + nx), slice(b.y, b.y + ny), slice(b.z, b.top))
        if not taken[cells].any():
            taken[cells] = True
            bricks.append(b)
    return BrickModel(bricks, (16, 16, 16))


@settings(max_examples=40, deadline=None)
@given(models(), st.floats(15, 60), st.floats(0, 360), st.data())
def test_front_mask_equals_brute_force(model, elevation, azimuth, data):
    n = len(model.bricks)
    wanted = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    present = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n))) | wanted
    view = _view(model, elevation, azimuth)
    got = front_mask(model, view, wanted, present)
    want = _brute(model, view, wanted, present)
    assert (got != want).sum() == 0


@settings(max_examples=30, deadline=None)
@given(models(), st.floats(15, 60), st.floats(0, 360), st.data())
def test_masks_of_a_split_partition_the_picture(model, elevation, azimuth, data):
    n = len(model.bricks)
    a = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    view = _view(model, elevation, azimuth)
    ma, mb = front_mask(model, view, a), front_mask(model, view, ~a)
    everything = front_mask(model, view, np.ones(n, bool))
    assert not (ma & mb).any()
    # a pixel where two bricks touch at exactly the same distance may go to both sides' ≤
    assert ((ma | mb) == everything).all()


def test_a_brick_behind_a_wall_is_hidden_and_a_lone_one_fills_its_outline():
    lone = BrickModel([Brick(0, 0, 0, "3001", False, 4, 0)], (8, 8, 8))
    view = _view(lone, 30, 45, res=(120, 90))
    m = front_mask(lone, view, np.array([True]))
    # the silhouette of a 2x4 brick seen from above at 30° covers a large share of the frame
    assert m.sum() > 0.15 * m.size
    # the same brick behind a 6-plate-high wall of bricks nearer the camera (azimuth 0: the
    # camera is at +x), wider and taller than it
    wall = [Brick(z, y, 6, "3001", True, 1, 0) for z in (0, 3, 6) for y in (0, 4)]
    model = BrickModel([Brick(0, 2, 0, "3003", False, 4, 0), *wall], (8, 8, 12))
    view = _view(model, 10, 0, res=(120, 90))
    hidden = front_mask(model, view, np.array([True] + [False] * len(wall)))
    alone = front_mask(
        model, view, np.array([True] + [False] * len(wall)), np.array([True] + [False] * len(wall))
    )
    assert alone.sum() > 100
    assert hidden.sum() < 0.05 * alone.sum()


def test_nothing_wanted_gives_an_empty_mask():
    model = BrickModel([Brick(0, 0, 0, "3001", False, 4, 0)], (8, 8, 8))
    view = _view(model, 30, 45)
    assert not front_mask(model, view, np.array([False])).any()


@settings(max_examples=40, deadline=None)
@given(models(), st.floats(15, 60), st.floats(0, 360), st.data())
def test_a_cropped_view_sees_what_its_pixels_saw_in_the_whole_view(model, elevation, azimuth, data):
    """OrthoView.crop: the same pixel grid, moved; box_rect holds every brick's outline."""
    view = _view(model, elevation, azimuth, res=(64, 48))
    c0, c1 = sorted(data.draw(st.lists(st.integers(0, 64), min_size=2, max_size=2, unique=True)))
    r0, r1 = sorted(data.draw(st.lists(st.integers(0, 48), min_size=2, max_size=2, unique=True)))
    sub = view.crop((c0, r0, c1, r1))
    assert sub.resolution == (c1 - c0, r1 - r0)
    assert math.isclose(sub.pixel_size, view.pixel_size)
    lo, hi = brick_bodies(model)
    pts = np.concatenate([lo, hi])
    assert np.allclose(sub.to_pixels(pts), view.to_pixels(pts) - [c0, r0], atol=1e-9)
    # the cropped mask is the whole mask's window (same rays; ties at exact edges aside)
    n = len(model.bricks)
    wanted = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    whole = front_mask(model, view, wanted)[r0:r1, c0:c1]
    assert (front_mask(model, sub, wanted) != whole).sum() <= 2
    # every pixel any brick shows lies inside box_rect of the bricks (with the studs)
    top = hi.copy()
    top[:, 2] += STUD_HEIGHT_MM * M_PER_MM
    rect = view.box_rect(lo, top)
    shown = front_mask(model, view, np.ones(n, bool))
    if shown.any():
        rows, cols = np.nonzero(shown)
        assert rect is not None
        assert rect[0] <= cols.min() and cols.max() < rect[2]
        assert rect[1] <= rows.min() and rows.max() < rect[3]


def test_crop_outside_the_view_is_refused():
    model = BrickModel([Brick(0, 0, 0, "3001", False, 4, 0)], (8, 8, 8))
    view = _view(model, 30, 45)
    for box in [(0, 0, 65, 10), (-1, 0, 10, 10), (5, 5, 5, 10)]:
        with pytest.raises(ValueError, match="not inside"):
            view.crop(box)
    far = np.array([[100.0, 100.0, 100.0]])
    assert view.box_rect(far, far + 0.01) is None

"""Photo colours for predicted voxels: the projection matches the renderer's framing."""

from __future__ import annotations

import numpy as np
import pytest

from image2lego.core.colorize import project, voxel_colors

pytest.importorskip("pyrender")


def _chair_like():
    g = np.zeros((16, 16, 16), bool)
    g[3:13, 3:13, 6:8] = True  # seat
    for x, y in ((3, 3), (11, 3), (3, 11), (11, 11)):
        g[x : x + 2, y : y + 2, 0:6] = True  # legs
    g[3:13, 11:13, 8:15] = True  # backrest at +Y
    return g


def test_voxels_project_inside_the_rendered_silhouette():
    from image2lego.training.render import SET_POSE, Renderer, voxel_surface

    g = _chair_like()
    with Renderer() as r:
        gray, mask = r.raw(*voxel_surface(g), SET_POSE)
        from image2lego.core.preprocess import frame_object

        _, framed_mask, _ = frame_object(gray, mask, 128)
    uv, depth = project(np.argwhere(g) + 0.5, g)
    px = np.clip(np.floor(uv).astype(int), 0, 127)
    assert framed_mask[px[:, 1], px[:, 0]].mean() > 0.97
    assert (depth > 0).all()


def test_front_voxels_take_photo_colour_and_hidden_ones_are_filled():
    g = _chair_like()
    size = 128
    rgb = np.zeros((size, size, 3), np.float32)
    rgb[:, : size // 2] = (1.0, 0.0, 0.0)  # left half of the photo red
    rgb[:, size // 2 :] = (0.0, 0.0, 1.0)  # right half blue
    mask = np.ones((size, size), bool)
    colors = voxel_colors(g, rgb, mask)
    assert colors.shape == g.shape + (3,)
    assert not colors[~g].any()
    occupied = colors[g]
    # every voxel got a colour from the photo (red or blue), none left black
    assert np.all(occupied.max(axis=1) > 0.99)
    uv, _ = project(np.argwhere(g) + 0.5, g)
    left = uv[:, 0] < size / 2 - 4
    assert (occupied[left, 0] > 0.99).mean() > 0.9  # projected left → mostly red

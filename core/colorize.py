"""Colour predicted voxels from the photo they were predicted from.

The network predicts shape only (as in the paper). For the "colour from the photo" mode we
know the camera: photos are framed exactly like the training renders (the set pose of
:mod:`.camera`, cropped and centred by :func:`.preprocess.frame_object`), so every voxel
can be projected into the framed photo. Voxels seen from the camera (a z-buffer over the
projected voxel centres) take the photo's colour under them; hidden voxels take the colour of
the nearest seen voxel (a Euclidean distance transform), which is the usual assumption that
the back of an object looks like its front.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .camera import SET_POSE, View, project, voxel_surface  # noqa: F401  (project re-exported)
from .preprocess import MARGIN, SIZE, Preprocessed, frame_object


def framed_rgb(src, pre: Preprocessed, size: int = SIZE) -> np.ndarray | None:
    """The photo in colour, framed exactly like ``pre.image``: float (size, size, 3) in 0..1,
    or ``None`` for a photo without colour."""
    from .preprocess import _open, _rgb_for_grabcut

    rgb = _rgb_for_grabcut(_open(src))
    if rgb is None:
        return None
    h, w = rgb.shape[:2]
    left, top, right, bottom = pre.bbox
    rect = np.zeros((h, w), np.float32)
    rect[top:bottom, left:right] = 1.0  # same bbox → same crop transform as the mask gave
    chans = [frame_object(rgb[..., c], rect, size, MARGIN, 0)[0] for c in range(3)]
    return np.stack(chans, axis=-1).astype(np.float32) / 255.0


def voxel_colors(
    grid: np.ndarray,
    rgb: np.ndarray,
    mask: np.ndarray,
    view: View = SET_POSE,
) -> np.ndarray:
    """Per-voxel colours ``[x, y, z, 3]`` (float 0..1) for ``grid`` seen in ``rgb``/``mask``."""
    grid = np.asarray(grid, dtype=bool)
    size = rgb.shape[0]
    idx = np.argwhere(grid)
    uv, depth = project(idx + 0.5, grid, view, size)
    px = np.clip(np.floor(uv).astype(int), 0, size - 1)
    # z-buffer: each voxel covers a few pixels at 32³ in a 128² frame; splat 3×3 around it
    zbuf = np.full((size, size), np.inf)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            x = np.clip(px[:, 0] + dx, 0, size - 1)
            y = np.clip(px[:, 1] + dy, 0, size - 1)
            np.minimum.at(zbuf, (y, x), depth)
    voxel_size = depth.std() / max(idx.std(0).mean(), 1e-6)  # depth units per voxel
    seen = depth <= zbuf[px[:, 1], px[:, 0]] + 0.75 * voxel_size
    seen &= mask[px[:, 1], px[:, 0]]
    out = np.zeros(grid.shape + (3,), np.float32)
    if not seen.any():  # nothing visible lines up with the photo: its mean object colour
        out[grid] = rgb[mask].mean(0) if mask.any() else 0.5
        return out
    have = np.zeros(grid.shape, bool)
    sv = idx[seen]
    have[tuple(sv.T)] = True
    out[tuple(sv.T)] = rgb[px[seen, 1], px[seen, 0]]
    _, nearest = ndimage.distance_transform_edt(~have, return_indices=True)
    filled = out[tuple(nearest)]
    return np.where(grid[..., None], filled, 0.0).astype(np.float32)


def photo_colors(src, grid: np.ndarray, pre: Preprocessed) -> np.ndarray:
    """Colours for ``grid`` predicted from the photo ``src`` (preprocessed as ``pre``); a
    photo without colour gives grey levels."""
    rgb = framed_rgb(src, pre, pre.image.shape[0])
    if rgb is None:
        gray = pre.image.astype(np.float32) / 255.0
        rgb = np.repeat(gray[..., None], 3, axis=2)
    return voxel_colors(grid, rgb, pre.mask)

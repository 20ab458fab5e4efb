"""Triangle mesh → bool voxel grid [x, y, z] (Z up) with a colour per voxel (numpy/scipy only).

Used by Brickify Selected: any mesh becomes LEGO through the same ``lego`` pipeline. The mesh's
bounding box is scaled so its longest side spans ``resolution`` cells (``cell`` fixes the
cell size instead); the surface is sampled densely (≥ 2 samples per cell along every
triangle edge), the cells hit are the shell, and enclosed cells are filled (``fill``). Each
surface cell's colour is the mean of its samples' colours; an interior cell takes the colour of
the nearest surface cell.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

MAX_SAMPLES = 4_000_000


def surface_samples(
    tris: np.ndarray, spacing: float, max_samples: int = MAX_SAMPLES
) -> tuple[np.ndarray, np.ndarray]:
    """Points on triangles (T, 3, 3) at most ``spacing`` apart: (N, 3) points and the (N,)
    triangle each came from. Barycentric grids, n = ceil(longest edge / spacing) per side."""
    tris = np.asarray(tris, dtype=np.float64)
    if tris.ndim != 3 or tris.shape[1:] != (3, 3):
        raise ValueError(f"triangles must be (T, 3, 3), got {tris.shape}")
    edges = np.linalg.norm(tris[:, [1, 2, 0]] - tris, axis=2).max(axis=1)
    n = np.maximum(1, np.ceil(edges / spacing)).astype(np.int64)
    counts = (n + 1) * (n + 2) // 2
    if counts.sum() > max_samples:
        raise ValueError(
            f"the mesh needs {int(counts.sum())} surface samples at this resolution "
            f"(limit {max_samples}); lower the resolution"
        )
    pts, owner = [], []
    for k in np.unique(n):
        idx = np.nonzero(n == k)[0]
        i, j = np.meshgrid(np.arange(k + 1), np.arange(k + 1), indexing="ij")
        keep = i + j <= k
        a, b = i[keep] / k, j[keep] / k  # barycentric weights of vertices 1 and 2
        t = tris[idx]
        p = (
            t[:, None, 0] * (1 - a - b)[None, :, None]
            + t[:, None, 1] * a[None, :, None]
            + t[:, None, 2] * b[None, :, None]
        )
        pts.append(p.reshape(-1, 3))
        owner.append(np.repeat(idx, len(a)))
    return np.concatenate(pts), np.concatenate(owner)


def voxelize(
    tris: np.ndarray,
    resolution: int = 32,
    tri_colors: np.ndarray | None = None,
    fill: bool = True,
    sample_colors=None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Triangles (T, 3, 3) in Z-up coordinates → (grid bool (X, Y, Z), colours (X, Y, Z, 3) or
    ``None``).

    ``tri_colors`` (T, 3) in [0, 1] gives one colour per triangle; ``sample_colors(points,
    triangle_index) -> (N, 3)`` gives a colour per surface sample (textures, vertex colours)
    and wins over ``tri_colors``. The grid is ``resolution`` cells along the longest side."""
    tris = np.asarray(tris, dtype=np.float64)
    if len(tris) == 0:
        raise ValueError("the mesh has no faces")
    if not 1 <= int(resolution) <= 256:
        raise ValueError(f"resolution must be in 1..256, got {resolution}")
    lo, hi = tris.reshape(-1, 3).min(0), tris.reshape(-1, 3).max(0)
    size = float((hi - lo).max())
    if not np.isfinite(size) or size <= 0:
        raise ValueError("the mesh is flat or degenerate (zero size)")
    cell = size / int(resolution)
    pts, owner = surface_samples(tris, cell / 2)
    ijk = np.floor((pts - lo) / cell).astype(np.int64)
    dims = np.maximum(1, np.ceil((hi - lo) / cell - 1e-9).astype(np.int64))
    ijk = np.clip(ijk, 0, dims - 1)  # samples may round a hair outside the box
    shell = np.zeros(tuple(dims), bool)
    shell[tuple(ijk.T)] = True
    grid = ndimage.binary_fill_holes(shell) if fill else shell

    colors = None
    if sample_colors is not None or tri_colors is not None:
        if sample_colors is not None:
            c = np.asarray(sample_colors(pts, owner), dtype=np.float64).reshape(-1, 3)
        else:
            c = np.asarray(tri_colors, dtype=np.float64).reshape(-1, 3)[owner]
        flat = np.ravel_multi_index(tuple(ijk.T), shell.shape)
        sums = np.zeros((shell.size, 3))
        np.add.at(sums, flat, c)
        cnt = np.bincount(flat, minlength=shell.size).astype(np.float64)
        mean = (sums / np.maximum(cnt, 1)[:, None]).reshape(*shell.shape, 3)
        # every cell (interior too) takes its nearest surface cell's colour
        _, near = ndimage.distance_transform_edt(~shell, return_indices=True)
        colors = np.clip(mean[tuple(near)], 0.0, 1.0)
        colors[~grid] = 0.0
    return grid, colors

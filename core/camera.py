"""The set-pose camera: the one view every photo is framed for, shared by the runtime
(colouring, silhouette carving) and the training renderer (``training.render``).

Objects live in the canonical voxel frame (``[x, y, z]`` grid units, Z up, front facing -Y).
The **set pose** (:data:`SET_POSE`, the paper's single fixed view) is a 3/4 front view: camera
on the front (-Y) side turned 35 degrees towards +X and 20 degrees above the horizon, looking
at the centre of the object's bounding box from 4.2 bounding radii with a 30 degree field of
view; a key light from the upper left of the camera plus ambient light; white background.

Nothing here needs OpenGL: only numpy, scipy and scikit-image (marching cubes).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
from scipy import ndimage

from .preprocess import BACKGROUND

RENDER_SIZE = 192
SMOOTH_SIGMA = 0.6
ISO_LEVEL = 0.3


@dataclass(frozen=True)
class View:
    """Camera, light and background of one render. Angles in degrees.

    Camera azimuth 0 looks at the object's front from -Y; positive turns towards +X.
    ``distance`` is in bounding-sphere radii of the object (>= 3.9 keeps it in frame).
    """

    azimuth: float = 35.0
    elevation: float = 20.0
    distance: float = 4.2
    yfov: float = 30.0
    light_azimuth: float = -30.0
    light_elevation: float = 50.0
    light_intensity: float = 2.5
    ambient: float = 0.3
    albedo: float = 0.55
    background: float = float(BACKGROUND)
    noise: float = 0.0  # std of the background texture noise (grey levels)
    noise_seed: int = 0

    def as_array(self) -> np.ndarray:
        return np.array([float(v) for v in asdict(self).values()], dtype=np.float32)

    @classmethod
    def from_array(cls, a) -> View:
        names = [f.name for f in fields(cls)]
        vals: dict[str, float | int] = dict(zip(names, (float(x) for x in a), strict=True))
        vals["noise_seed"] = int(vals["noise_seed"])
        return cls(**vals)  # type: ignore[arg-type]  # the fields are floats and one int


SET_POSE = View()


# --------------------------------------------------------------------------- geometry


def voxel_surface(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed marching-cubes surface of a bool grid, in grid coordinates (voxel [i, j, k]
    spans [i, i+1) ...). Returns ``(vertices (V, 3) float, faces (F, 3) int)``."""
    from skimage import measure

    g = np.asarray(grid)
    if g.ndim != 3:
        raise ValueError(f"expected a 3D voxel grid, got shape {g.shape}")
    if not g.any():
        raise ValueError("cannot render an empty voxel grid")
    pad = 3
    f = ndimage.gaussian_filter(np.pad(g.astype(np.float32), pad), SMOOTH_SIGMA)
    if f.max() < ISO_LEVEL:  # a lone voxel blurs below the level: fall back to no blur
        f = np.pad(g.astype(np.float32), pad)
    verts, faces, _, _ = measure.marching_cubes(f, ISO_LEVEL)
    # skimage winds these faces with normals pointing into the solid (high values); the
    # renderer lights by face winding, so reverse them to face outwards
    return verts - pad + 0.5, faces[:, ::-1].astype(np.int64)


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    z = eye - target
    z = z / np.linalg.norm(z)
    x = np.cross(up, z)
    if np.linalg.norm(x) < 1e-6:
        x = np.cross((0.0, 1.0, 0.0), z)
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, y, z, eye
    return pose


def direction(azimuth: float, elevation: float) -> np.ndarray:
    """Unit vector from the object towards a camera/light at (azimuth, elevation)."""
    a, e = math.radians(azimuth), math.radians(elevation)
    return np.array([math.sin(a) * math.cos(e), -math.cos(a) * math.cos(e), math.sin(e)])


def project(points: np.ndarray, grid: np.ndarray, view: View = SET_POSE, size: int = 128):
    """Project grid-coordinate points into the *framed* ``size``² image of ``grid``: the
    renderer's camera for ``view`` (centred on the bounding box of the object's smoothed
    surface, as the renderer centres it) followed by the photo crop of
    ``core.preprocess.frame_object`` (the silhouette's box, margin ``MARGIN``).

    Returns ``(uv (N, 2) pixel coordinates (x right, y down; pixel ``i`` spans [i, i+1)),
    depth (N,) distance in front of the camera)``. The one set-pose projection: colouring
    (``core.colorize``) and silhouette carving (``core.inference``) both use it.
    """
    from .preprocess import MARGIN

    verts, _ = voxel_surface(grid)
    lo, hi = verts.min(0), verts.max(0)
    centre = (lo + hi) / 2
    radius = max(float(np.linalg.norm(hi - lo)) / 2, 1e-6)
    eye = direction(view.azimuth, view.elevation) * view.distance * radius
    world_to_cam = np.linalg.inv(look_at(eye, np.zeros(3)))
    f = 1.0 / math.tan(math.radians(view.yfov) / 2)

    def to_ndc(p):
        pc = (p - centre) @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
        depth = -pc[:, 2]  # OpenGL cameras look down -Z
        return np.stack([f * pc[:, 0] / depth, -f * pc[:, 1] / depth], axis=1), depth

    sil, _ = to_ndc(verts)  # the silhouette's bounding box decides the crop
    (left, top), (right, bottom) = sil.min(0), sil.max(0)
    side = max(right - left, bottom - top) / (1 - 2 * MARGIN)
    ndc, depth = to_ndc(np.asarray(points, dtype=np.float64).reshape(-1, 3))
    uv = (ndc - [(left + right) / 2, (top + bottom) / 2]) / side * size + size / 2
    return uv, depth

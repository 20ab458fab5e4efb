"""The renderer that makes the image encoder's training views (and the public API for it).

pyrender (OpenGL through EGL; ``PYOPENGL_PLATFORM=egl`` is set when a Renderer is made,
unless the caller chose otherwise; pyrender itself is imported lazily) renders a grey, lit
object, **grayscale 128x128**, framed exactly like a preprocessed photo: the scene is rendered at
:data:`RENDER_SIZE`, the object mask is ``depth > 0``, and ``core.preprocess.frame_object``
(the very function photos go through) crops it to the object with the same margin, centres,
resizes and composites it onto the background.

Objects live in the canonical voxel frame of ``training.data`` (``[x, y, z]`` grid units, Z up,
front facing -Y). Voxel grids are rendered from a smooth surface: marching cubes
(scikit-image) on the grid lightly blurred (Gaussian sigma :data:`SMOOTH_SIGMA` voxels,
iso-level :data:`ISO_LEVEL`, low enough that one-voxel-thin legs survive). Meshes are rendered
as they are, after a 4x4 transform into the grid frame (a cache row's ``mesh_transform``).

The **set pose** (:data:`SET_POSE`, the paper's single fixed view): a 3/4 front view, camera on
the front (-Y) side turned 35 degrees towards +X and 20 degrees above the horizon (so chair
legs and the seat are both visible), looking at the centre of the object's bounding box from
4.2 bounding radii with a 30 degree field of view; a key light from the upper left of the
camera (azimuth -30, elevation 50 degrees) plus ambient light; white background.
:func:`jitter_view` randomises camera azimuth (+-12), elevation (+-8), distance, light
direction and intensity, ambient, object albedo, and the background (a grey shade and a
blurred noise texture half of the time) so that real photos after background removal look
like training data.
"""

from __future__ import annotations

import math
import os
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..core.camera import (  # noqa: F401  (re-exported: the renderer's public names)
    ISO_LEVEL,
    RENDER_SIZE,
    SET_POSE,
    SMOOTH_SIGMA,
    View,
    voxel_surface,
)
from ..core.camera import direction as _direction
from ..core.camera import look_at as _look_at
from ..core.preprocess import BACKGROUND, MARGIN, SIZE, frame_object

# bumped whenever the pictures change; views128.npz rows are only reused at the same version
# (1: marching-cubes faces wound inwards, so voxel rows were lit from behind; 2: fixed)
RENDER_VERSION = 2


def jitter_view(rng: np.random.Generator | int | None = None, base: View = SET_POSE) -> View:
    """A randomised view around ``base`` (see the module docstring for the ranges)."""
    rng = np.random.default_rng(rng)
    plain = rng.random() < 0.5
    return replace(
        base,
        azimuth=base.azimuth + rng.uniform(-12, 12),
        elevation=float(np.clip(base.elevation + rng.uniform(-8, 8), 0, 60)),
        distance=rng.uniform(4.0, 5.5),
        light_azimuth=base.light_azimuth + rng.uniform(-45, 45),
        light_elevation=float(np.clip(base.light_elevation + rng.uniform(-25, 25), 10, 85)),
        light_intensity=base.light_intensity * rng.uniform(0.7, 1.3),
        ambient=rng.uniform(0.15, 0.4),
        albedo=rng.uniform(0.4, 0.7),
        background=float(BACKGROUND) if plain else rng.uniform(205, 255),
        noise=0.0 if plain else rng.uniform(0, 8),
        noise_seed=int(rng.integers(0, 2**24)),  # exact in the float32 params array
    )


def photo_view(rng: np.random.Generator | int | None = None, base: View = SET_POSE) -> View:
    """A view like a user's photo (issue #16): elevation anywhere in 0..50 degrees, azimuth
    +-30 around the set pose (the output grid stays in the object's frame, so the azimuth
    range is limited to what one class-agnostic network can undo), focal length 20..55
    degrees with the distance that keeps the object in frame, light from anywhere above,
    dark to bright albedo, and a background of any grey with texture up to clutter strength.
    :func:`photo_frame` adds mask errors like those GrabCut makes."""
    rng = np.random.default_rng(rng)
    yfov = rng.uniform(20, 55)
    # the bounding sphere stays inside the frame: distance >= 1.1 / sin(yfov / 2)
    near = 1.1 / math.sin(math.radians(yfov) / 2)
    return replace(
        base,
        azimuth=base.azimuth + rng.uniform(-30, 30),
        elevation=rng.uniform(0, 50),
        distance=near * rng.uniform(1.0, 1.5),
        yfov=yfov,
        light_azimuth=rng.uniform(-180, 180),
        light_elevation=rng.uniform(10, 85),
        light_intensity=base.light_intensity * rng.uniform(0.5, 1.5),
        ambient=rng.uniform(0.1, 0.5),
        albedo=rng.uniform(0.15, 0.9),
        background=rng.uniform(0, 255),
        noise=rng.uniform(0, 30),
        noise_seed=int(rng.integers(0, 2**24)),
    )


def photo_frame(gray: np.ndarray, mask: np.ndarray, view: View, size: int = SIZE) -> np.ndarray:
    """Frame a raw render like a photo whose background was removed imperfectly: the mask is
    eroded or dilated by up to 3 render pixels (a rim of another grey, the "scene" around
    the object, comes along when dilated), chosen from ``view.noise_seed`` so the picture is
    reproducible from its view parameters; then the same :func:`frame_object` as photos."""
    r = np.random.default_rng([view.noise_seed, 7])
    k = int(r.integers(-3, 4))
    g = np.asarray(gray, dtype=np.float32).copy()
    m = np.asarray(mask, dtype=bool)
    if k > 0:
        grown = ndimage.binary_dilation(m, iterations=k)
        g[grown & ~m] = r.uniform(0, 255)
        m = grown
    elif k < 0:
        shrunk = ndimage.binary_erosion(m, iterations=-k)
        m = shrunk if shrunk.any() else m
    bg: float | np.ndarray = view.background
    if view.noise > 0:
        tex = ndimage.gaussian_filter(r.normal(0, 1, (size, size)), r.uniform(1.0, 4.0))
        tex *= view.noise / max(tex.std(), 1e-6)
        bg = np.clip(view.background + tex, 0, 255)
    image, _, _ = frame_object(g, m, size, MARGIN, bg)
    return image


# --------------------------------------------------------------------------- renderer


class Renderer:
    """One reusable offscreen OpenGL context (creating one costs ~0.5 s)."""

    def __init__(self, render_size: int = RENDER_SIZE):
        # headless OpenGL through EGL unless the caller chose (e.g. osmesa); set only when a
        # renderer is made, before PyOpenGL is first imported, never as an import side effect
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
        try:
            import pyrender
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ImportError(
                "rendering needs pyrender (pip install 'image2lego[train]') and an OpenGL "
                "driver (EGL by default; set PYOPENGL_PLATFORM=osmesa for software)"
            ) from e
        self._pr = pyrender
        self.render_size = render_size
        self._r = pyrender.OffscreenRenderer(render_size, render_size)

    def close(self) -> None:
        if self._r is not None:
            self._r.delete()
            self._r = None

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # best effort; contexts are also freed at exit
        try:
            self.close()
        except Exception:
            pass

    def raw(
        self, vertices: np.ndarray, faces: np.ndarray, view: View, smooth: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Render a triangle mesh (grid coordinates) -> (gray float32 (S, S), mask bool)."""
        import trimesh

        pr = self._pr
        if self._r is None:
            raise RuntimeError("renderer is closed")
        v = np.asarray(vertices, dtype=np.float64)
        f = np.asarray(faces, dtype=np.int64)
        if len(v) == 0 or len(f) == 0:
            raise ValueError("nothing to render: the mesh has no triangles")
        lo, hi = v.min(0), v.max(0)
        centre = (lo + hi) / 2
        radius = max(float(np.linalg.norm(hi - lo)) / 2, 1e-6)
        tm = trimesh.Trimesh(v - centre, f, process=False)
        mat = pr.MetallicRoughnessMaterial(
            baseColorFactor=[view.albedo, view.albedo, view.albedo, 1.0],
            metallicFactor=0.0,
            roughnessFactor=0.9,
            doubleSided=True,
        )
        scene = pr.Scene(bg_color=[0.0, 0.0, 0.0, 0.0], ambient_light=[view.ambient] * 3)
        scene.add(pr.Mesh.from_trimesh(tm, material=mat, smooth=smooth))
        eye = _direction(view.azimuth, view.elevation) * view.distance * radius
        cam = pr.PerspectiveCamera(
            yfov=math.radians(view.yfov), znear=0.05 * radius, zfar=(view.distance + 2) * radius
        )
        scene.add(cam, pose=_look_at(eye, np.zeros(3)))
        light_pos = _direction(view.light_azimuth, view.light_elevation) * radius * 4
        scene.add(
            pr.DirectionalLight(color=np.ones(3), intensity=view.light_intensity),
            pose=_look_at(light_pos, np.zeros(3)),
        )
        color, depth = self._r.render(scene)
        gray = color[..., :3].astype(np.float32).mean(axis=2)
        return gray, depth > 0

    def frame(self, gray: np.ndarray, mask: np.ndarray, view: View, size: int = SIZE):
        """Crop/centre/resize/composite exactly like photo preprocessing."""
        bg: float | np.ndarray = view.background
        if view.noise > 0:
            r = np.random.default_rng(view.noise_seed)
            tex = ndimage.gaussian_filter(r.normal(0, 1, (size, size)), 1.5)
            tex *= view.noise / max(tex.std(), 1e-6)
            bg = np.clip(view.background + tex, 0, 255)
        image, _, _ = frame_object(gray, mask, size, MARGIN, bg)
        return image


_DEFAULT: Renderer | None = None


def default_renderer() -> Renderer:
    """A process-wide renderer, created on first use."""
    global _DEFAULT
    if _DEFAULT is None or _DEFAULT._r is None:
        _DEFAULT = Renderer()
    return _DEFAULT


def _pick_view(view: View | None, rng) -> View:
    if view is not None:
        return view
    if rng is None:
        return SET_POSE
    return jitter_view(rng)


def _mesh_arrays(mesh, transform: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    from .data import _as_mesh, grid_transform

    m = _as_mesh(mesh)
    tf = grid_transform(m) if transform is None else np.asarray(transform, dtype=np.float64)
    if tf.shape != (4, 4):
        raise ValueError(f"transform must be 4x4, got {tf.shape}")
    return m.vertices @ tf[:3, :3].T + tf[:3, 3], np.asarray(m.faces)


def render_voxels(
    grid: np.ndarray,
    view: View | None = None,
    rng: np.random.Generator | int | None = None,
    *,
    renderer: Renderer | None = None,
) -> np.ndarray:
    """A bool voxel grid ``[x, y, z]`` -> uint8 (128, 128) grayscale render.

    ``view`` wins; else ``rng`` (a Generator or seed) draws a jittered view; else the set pose.
    """
    v = _pick_view(view, rng)
    r = renderer or default_renderer()
    verts, faces = voxel_surface(grid)
    return r.frame(*r.raw(verts, faces, v, smooth=True), v)


def render_mesh(
    mesh,
    view: View | None = None,
    rng: np.random.Generator | int | None = None,
    *,
    transform: np.ndarray | None = None,
    renderer: Renderer | None = None,
) -> np.ndarray:
    """A mesh (``trimesh.Trimesh`` or file) -> uint8 (128, 128) grayscale render.

    ``transform`` (4x4) takes the mesh into the canonical grid frame (a cache row's
    ``mesh_transform``); without it the mesh keeps its axes and is scaled into a 32^3 box.
    """
    v = _pick_view(view, rng)
    r = renderer or default_renderer()
    verts, faces = _mesh_arrays(mesh, transform)
    return r.frame(*r.raw(verts, faces, v, smooth=False), v)


def render_views(
    obj,
    n_views: int = 1,
    rng: np.random.Generator | int | None = 0,
    *,
    transform: np.ndarray | None = None,
    renderer: Renderer | None = None,
    return_views: bool = False,
):
    """View 0 in the set pose, views 1.. jittered: uint8 (n_views, 128, 128).

    ``obj`` is a bool voxel grid (3D array) or a mesh / mesh file (with optional
    ``transform``). ``return_views=True`` also returns the list of :class:`View` used.
    """
    if n_views < 1:
        raise ValueError(f"n_views must be >= 1, got {n_views}")
    gen = np.random.default_rng(rng)
    views = [SET_POSE] + [jitter_view(gen) for _ in range(n_views - 1)]
    r = renderer or default_renderer()
    if isinstance(obj, np.ndarray) and obj.ndim == 3:
        verts, faces = voxel_surface(obj)
        smooth = True
    else:
        verts, faces = _mesh_arrays(obj, transform)
        smooth = False
    out = np.stack([r.frame(*r.raw(verts, faces, v, smooth=smooth), v) for v in views])
    return (out, views) if return_views else out


# --------------------------------------------------------------------------- dataset views


def render_cache(
    cache: str | Path | None = None,
    n_views: int = 3,
    seed: int = 0,
    *,
    limit: int | None = None,
    fresh: bool = False,
    reuse_older: bool = False,
    style: str = "jitter",
    log=print,
) -> Path:
    """Render ``n_views`` views of every row of ``voxels32.npz`` into ``views128.npz``.

    Arrays: ``images`` uint8 (N, V, 128, 128) (view 0 = set pose), ``views`` float32
    (N, V, P) (:meth:`View.as_array`; all zeros = not rendered), ``view_version`` int16 (N, V)
    (the :data:`RENDER_VERSION` that drew each view), and the rows' ``source``,
    ``model_id``, ``rotation`` so the two files can be checked to line up. View v of row i
    is drawn from ``default_rng([seed, i, v])``.

    Rendering goes view-major: all rows' set-pose views first, and the file is written after
    every pass (V = 1, 2, ...), so a usable file exists early. Views already in an existing
    ``views128.npz`` (same source/model_id/rotation, seed and :data:`RENDER_VERSION`) are
    reused, so rebuilding after rows were appended to the voxel cache renders only the new
    rows; ``fresh`` ignores the old file, ``reuse_older`` also reuses older render versions.
    ``style``: views 1.. by :func:`jitter_view` ("jitter", the shipped weights' views) or by
    :func:`photo_view` + :func:`photo_frame` ("photo"); views of another style are never
    reused.
    """
    if style not in ("jitter", "photo"):
        raise ValueError(f"style must be 'jitter' or 'photo', got {style!r}")
    jitter = jitter_view if style == "jitter" else photo_view
    framer = None if style == "jitter" else photo_frame
    import time

    from tqdm import tqdm

    from ..core.paths import cache_dir
    from .data import CACHE_FILE, VIEWS_FILE, _atomic_savez, load_voxels

    if n_views < 1:
        raise ValueError(f"n_views must be >= 1, got {n_views}")
    root = cache_dir(cache)
    vs = load_voxels(root / CACHE_FILE)
    n = len(vs) if limit is None else min(limit, len(vs))
    keys = list(zip(vs.source[:n], vs.model_id[:n], vs.rotation[:n].tolist(), strict=True))
    images = np.full((n, n_views, SIZE, SIZE), BACKGROUND, dtype=np.uint8)
    params = np.zeros((n, n_views, len(SET_POSE.as_array())), dtype=np.float32)
    versions = np.zeros((n, n_views), dtype=np.int16)  # renderer version of each view
    out = root / VIEWS_FILE
    old: dict[tuple, int] = {}
    old_imgs = old_params = old_versions = None
    if out.is_file() and not fresh:
        with np.load(out) as d:
            old_style = str(d["style"]) if "style" in d.files else "jitter"
            if "seed" in d.files and int(d["seed"]) == seed and old_style == style:
                old_imgs, old_params = d["images"], d["views"]
                old_versions = (
                    d["view_version"]
                    if "view_version" in d.files
                    else np.ones(old_params.shape[:2], np.int16)  # before versions were kept
                )
                okeys = zip(d["source"], d["model_id"], d["rotation"].tolist(), strict=True)
                old = {k: j for j, k in enumerate(okeys)}
        log(f"{out} holds views of {len(old)} rows with this seed")

    def save(v_done: int) -> None:
        _atomic_savez(
            out,
            images=images[:, :v_done],
            views=params[:, :v_done],
            view_version=versions[:, :v_done],
            view_fields=np.array([f.name for f in fields(View)]),
            source=vs.source[:n],
            model_id=vs.model_id[:n],
            rotation=vs.rotation[:n],
            seed=np.int64(seed),
            style=np.array(style),
        )

    t0, c0 = time.perf_counter(), time.process_time()
    rendered = failed = 0
    with Renderer() as r:
        for v in range(n_views):
            for i in tqdm(range(n), desc=f"view {v}", mininterval=15, unit="row"):
                j = old.get(keys[i])
                if (
                    j is not None
                    and v < old_params.shape[1]
                    and old_params[j, v].any()
                    and (old_versions[j, v] == RENDER_VERSION or reuse_older)
                ):
                    images[i, v], params[i, v] = old_imgs[j, v], old_params[j, v]
                    versions[i, v] = old_versions[j, v]
                    continue
                view = SET_POSE if v == 0 else jitter(np.random.default_rng([seed, i, v]))
                try:
                    if vs.mesh_path[i]:
                        verts, faces = _mesh_arrays(root / vs.mesh_path[i], vs.mesh_transform[i])
                        smooth = False
                    else:
                        verts, faces = voxel_surface(vs.voxels[i])
                        smooth = True
                    raw = r.raw(verts, faces, view, smooth=smooth)
                    if v > 0 and framer is not None:
                        images[i, v] = framer(*raw, view)
                    else:
                        images[i, v] = r.frame(*raw, view)
                    params[i, v] = view.as_array()
                    versions[i, v] = RENDER_VERSION
                    rendered += 1
                except (ValueError, FileNotFoundError) as e:  # keep going; count them
                    failed += 1
                    log(f"row {i} ({keys[i][0]}/{keys[i][1]}) view {v} not rendered: {e}")
            save(v + 1)
            el = time.perf_counter() - t0
            log(f"pass {v + 1}/{n_views} written to {out} ({el:.0f}s so far)")
    el, cpu = time.perf_counter() - t0, time.process_time() - c0
    log(
        f"rendered {rendered} views ({n} rows x {n_views}, {failed} failed) in {el:.0f}s wall, "
        f"{cpu:.0f}s CPU ({cpu / max(rendered, 1) * 1000:.1f} ms CPU/view)"
    )
    return out

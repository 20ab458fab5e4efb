"""Per-step instruction renders (Workbench) and the instruction booklet.

One image per build step from an orthographic camera at one fixed angle (3/4 view from above,
like printed LEGO instructions) that frames what the step builds: the new bricks and their
neighbourhood (a few studs around, a few plates below), so an early layer fills the page
instead of sitting small at the bottom of a frame sized for the finished model. Bricks of
earlier steps keep their real colours (only slightly lightened), the new step's bricks get a
highlight outline, later steps are hidden. Each (part, colour) used is rendered once as a
thumbnail for the "parts needed" callout; the finished model is rendered from the front
(``cover.png``) and from behind (``back.png``).

How the highlight works: every step is rendered twice through Workbench — once in material
colours, once as a flat object-colour ID pass at half the size (new bricks white, the rest
black) — and the two are combined with numpy/Pillow. The ID pass only needs object visibility
and object colour, so it works the same for both instancing methods of :mod:`.scene` (for
geometry-nodes instances the object colour of the step's instancer object applies to all its
instances; the step is the unit that is highlighted anyway).

Speed (software GL on CPU): Workbench's FXAA costs more than the rest of a render (0.37 of
0.54 s at 800×600) and screen-space cavity another ~20 %, so step renders skip both (the
object outline already draws the brick edges) and :func:`soften_edges` smooths edges with
Pillow (~15 ms); the cover and back views keep FXAA and cavity. Blender writes its temporary
PNGs uncompressed. Only visibility, object colours and the camera change between steps — the
scene is built once and reused for every step. A step renders only the rectangle of its frame
that the bricks built so far can cover (about half of it; the camera moved sideways on the same
pixel grid, see :meth:`~..lego.visibility.OrthoView.crop`) and puts it back in the frame:
the same pixels for about 25 % less CPU per step.

The user's scene is never touched: rendering happens in a temporary scene that links the model
collection; the only shared state changed (object ``hide_render`` and ``color``) is restored in
a ``finally``. All files are written to a temporary name and renamed into place.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ..lego.fileio import atomic_write_bytes
from ..lego.progress import Progress, scaled
from ..lego.progress import run as progress_run
from ..lego.staging import staged_output
from ..lego.units import CLEARANCE_MM, PLATE_MM, STUD_HEIGHT_MM, STUD_MM
from ..lego.visibility import OrthoView, brick_bodies, front_mask
from . import scene as lego_scene

#: Elevation and azimuth of the instruction camera (degrees): a 3/4 view from the front-right
#: and above, the usual LEGO instruction angle.
CAMERA_ELEVATION = 32.0
CAMERA_AZIMUTH = -55.0
#: Empty border around the model, as a fraction of the framed size.
CAMERA_MARGIN = 0.06

#: How earlier steps are drawn: mixed this much towards white (their colours stay readable).
FADE_TO_WHITE = 0.15
#: Outline drawn around the new step's bricks (sRGB 0..255) and its width in pixels.
HIGHLIGHT_RGB = (255, 140, 0)
HIGHLIGHT_WIDTH = 2
#: The ID pass (which pixels show the new bricks) is rendered at this fraction of the size.
ID_SCALE = 0.5

#: What a step's camera frames around the new bricks: this many studs on every side, this
#: many plates below them (the layer it sits on), and at least this many studs across.
NEIGHBOUR_STUDS = 3
NEIGHBOUR_PLATES = 6
MIN_VIEW_STUDS = 6

THUMB_SIZE = 128
IMAGES_DIRNAME = "instructions_images"

# Frame at which a temporary scene evaluates the model: after any build animation's last key,
# so animated step parents are at rest (constant extrapolation).
_REST_FRAME = 1_000_000


@dataclass
class InstructionsResult:
    html: Path
    pdf: Path
    step_images: list[Path]
    cover: Path
    thumbnails: dict[tuple[str, int], Path]
    timings: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- camera framing


def camera_basis(elevation_deg: float, azimuth_deg: float) -> np.ndarray:
    """3×3 rotation whose columns are the camera's right, up and backward (local +X, +Y, +Z).

    Blender cameras look down their local -Z; the camera sits at ``azimuth`` (from +X towards
    +Y) and ``elevation`` above the horizon, looking at the target.
    """
    el, az = math.radians(elevation_deg), math.radians(azimuth_deg)
    back = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    right = np.cross(-back, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, -back)
    return np.stack([right, up, back], axis=1)


def frame_box(
    bmin,
    bmax,
    aspect: float,
    elevation_deg: float = CAMERA_ELEVATION,
    azimuth_deg: float = CAMERA_AZIMUTH,
    margin: float = CAMERA_MARGIN,
    scene_box=None,
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Orthographic framing of an axis-aligned box.

    Returns ``(location, rotation_matrix, ortho_scale, distance)``: the box's projection is
    centred in the frame and fills it up to ``margin`` on the tighter side. ``aspect`` is
    width / height of the image. ``scene_box`` ``(lo, hi)``: everything that must lie in front
    of the camera and inside its clipping range when only part of the model is framed
    (default: the framed box). Pure math, no bpy.
    """
    bmin, bmax = np.asarray(bmin, float), np.asarray(bmax, float)
    if not (np.all(np.isfinite(bmin)) and np.all(np.isfinite(bmax)) and np.all(bmax >= bmin)):
        raise ValueError(f"invalid bounding box {bmin} .. {bmax}")
    if not aspect > 0:
        raise ValueError(f"aspect must be positive, got {aspect}")
    rot = camera_basis(elevation_deg, azimuth_deg)
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], float)
    corners = bmin + corners * (bmax - bmin)
    center = (bmin + bmax) / 2
    local = (corners - center) @ rot  # columns: right, up, back
    lo, hi = local.min(axis=0), local.max(axis=0)
    w, h = max(hi[0] - lo[0], 1e-4), max(hi[1] - lo[1], 1e-4)
    mid = (lo + hi) / 2
    target = center + rot[:, 0] * mid[0] + rot[:, 1] * mid[1]
    # Blender's 'AUTO' sensor fit: ortho_scale spans the longer image side.
    if aspect >= 1:
        scale = max(w, h * aspect)
    else:
        scale = max(w / aspect, h)
    scale *= 1 + 2 * margin
    radius = float(np.linalg.norm(bmax - bmin)) / 2 + 1e-3
    distance = 2 * radius + 0.05
    if scene_box is not None:
        slo, shi = np.asarray(scene_box[0], float), np.asarray(scene_box[1], float)
        sc = (slo + shi) / 2
        distance = max(
            distance,
            float(np.linalg.norm(shi - slo)) + float(np.linalg.norm(sc - target)) + 0.05,
        )
    return target + rot[:, 2] * distance, rot, float(scale), distance


def model_bounds(collection, depsgraph=None) -> tuple[np.ndarray, np.ndarray]:
    """World-space bounding box of everything the model shows (instances included).

    ``depsgraph`` defaults to the active view layer's; pass a temporary scene's to measure
    the model at rest while it is animated.
    """
    if depsgraph is None:
        depsgraph = bpy.context.evaluated_depsgraph_get()
    mine = {o.name_full for o in collection.all_objects}
    pts = []
    for inst in depsgraph.object_instances:
        owner = inst.parent if inst.is_instance else inst.object
        if owner is None or owner.original.name_full not in mine:
            continue
        ob = inst.object
        if ob.type != "MESH" or len(ob.data.polygons) == 0:
            continue  # e.g. a geometry-nodes step object's own point cloud
        mw = np.array(inst.matrix_world)
        bb = np.array([tuple(c) for c in ob.bound_box], float)
        pts.append(bb @ mw[:3, :3].T + mw[:3, 3])
    if not pts:
        raise ValueError(f"model {collection.name!r} has no visible bricks to frame")
    allp = np.concatenate(pts)
    return allp.min(axis=0), allp.max(axis=0)


def place_camera(
    cam_ob, bmin, bmax, aspect: float, *, azimuth_deg: float = CAMERA_AZIMUTH, scene_box=None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Point an (orthographic) camera object at a box so that it fills the frame; returns
    ``(location, rotation, ortho_scale)``."""
    loc, rot, scale, dist = frame_box(
        bmin, bmax, aspect, azimuth_deg=azimuth_deg, scene_box=scene_box
    )
    cam = cam_ob.data
    cam.type = "ORTHO"
    cam.ortho_scale = scale
    cam.sensor_fit = "AUTO"
    cam.clip_start = max(1e-4, dist * 0.01)
    cam.clip_end = dist * 4
    cam_ob.matrix_world = Matrix.Translation(Vector(loc)) @ Matrix(rot.tolist()).to_4x4()
    return loc, rot, scale


def brick_boxes(model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World-space boxes ``(lo [n, 3], hi [n, 3], step [n])`` of the bricks' lattice cells, in
    metres, as :mod:`.scene` places them (model centred on the origin in X/Y, studs included):
    :func:`~..lego.visibility.brick_bodies` without the clearance, plus the studs."""
    lo, hi = brick_bodies(model)
    c = CLEARANCE_MM * 1e-3
    lo[:, :2] -= c
    hi[:, :2] += c
    hi[:, 2] += STUD_HEIGHT_MM * 1e-3
    return lo, hi, np.array([b.step for b in model.bricks], int)


def step_view_box(lo, hi, steps, step: int) -> tuple[np.ndarray, np.ndarray]:
    """The box a step's camera frames: the step's bricks, :data:`NEIGHBOUR_STUDS` around and
    :data:`NEIGHBOUR_PLATES` below them (clipped to what is built so far), at least
    :data:`MIN_VIEW_STUDS` across."""
    new, sofar = steps == step, steps <= step
    if not new.any():
        raise ValueError(f"step {step} has no bricks")
    nlo, nhi = lo[new].min(axis=0), hi[new].max(axis=0)
    slo, shi = lo[sofar].min(axis=0), hi[sofar].max(axis=0)
    s, p = STUD_MM * 1e-3, PLATE_MM * 1e-3
    reach = np.array([NEIGHBOUR_STUDS * s, NEIGHBOUR_STUDS * s, NEIGHBOUR_PLATES * p])
    blo = np.maximum(slo, nlo - reach)
    bhi = np.minimum(shi, nhi + np.array([reach[0], reach[1], 0.0]))
    bhi = np.maximum(bhi, nhi)
    short = np.maximum(0.0, MIN_VIEW_STUDS * s - (bhi - blo))
    short[2] = 0.0
    return blo - short / 2, bhi + short / 2


# --------------------------------------------------------------------------- model structure


def step_groups(collection) -> list[tuple[int, bpy.types.Object, list[bpy.types.Object]]]:
    """``[(step, parent, objects)]`` in step order; ``objects`` = the parent + its descendants."""
    out = []
    for p in lego_scene.step_parents(collection):
        out.append((int(p[lego_scene.STEP_KEY]), p, [p, *p.children_recursive]))
    if not out:
        raise ValueError(f"collection {collection.name!r} has no build steps (no step parents)")
    return out


def parts_by_step(collection) -> list[dict[tuple[str, int], int]]:
    """Per build step ``{(part_id, colour): count}``, from the model the collection was built
    from. Counts the collection's own step assignment (what the renders show) rather than
    recomputing steps."""
    model = lego_scene.model_from_collection(collection)
    out: list[dict[tuple[str, int], int]] = [{} for _ in range(model.n_steps())]
    for b in model.bricks:
        d = out[b.step]
        d[(b.part_id, b.color)] = d.get((b.part_id, b.color), 0) + 1
    return out


def step_layers(model) -> list[int]:
    """Per build step, the layer it builds (lowest brick bottom, in plates); consecutive
    steps with the same layer are sub-steps of one big layer."""
    lows: dict[int, int] = {}
    for b in model.bricks:
        lows[b.step] = min(lows.get(b.step, b.z), b.z)
    return [lows.get(k, -1 - k) for k in range(model.n_steps())]


# --------------------------------------------------------------------------- render setup


def _setup_workbench(
    scene, resolution, *, id_pass: bool = False, fxaa: bool = True, cavity: bool = True
) -> None:
    r = scene.render
    r.engine = "BLENDER_WORKBENCH"
    r.resolution_x, r.resolution_y = int(resolution[0]), int(resolution[1])
    r.resolution_percentage = 100
    r.film_transparent = True
    r.dither_intensity = 0.0  # deterministic pixels (no noise in flat areas)
    r.use_compositing = False
    r.use_sequencer = False
    r.image_settings.file_format = "PNG"
    r.image_settings.color_mode = "RGBA"
    r.image_settings.color_depth = "8"
    r.image_settings.compression = 0  # temporary files: read back at once
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    sh = scene.display.shading
    if id_pass:
        scene.display.render_aa = "OFF"
        sh.light = "FLAT"
        sh.color_type = "OBJECT"
        sh.show_cavity = False
        sh.show_object_outline = False
        sh.show_specular_highlight = False
        sh.show_shadows = False
    else:
        # FXAA: ~0.55 s CPU for 800×600 with software GL, vs 1.2 s for 8 samples, and
        # visually almost the same on brick edges.
        scene.display.render_aa = "FXAA" if fxaa else "OFF"
        sh.light = "STUDIO"
        sh.color_type = "MATERIAL"
        sh.show_cavity = cavity
        sh.cavity_type = "SCREEN"
        sh.show_object_outline = True
        sh.object_outline_color = (0.05, 0.05, 0.05)
        sh.show_specular_highlight = True
        sh.show_shadows = False
    # Workbench's studio light renders LEGO colours about half a stop dark (white reads grey).
    scene.view_settings.exposure = 0.0 if id_pass else 0.5


def _render_to(scene, path: Path) -> Path:
    """Render ``scene`` (not necessarily the active one) to ``path`` as PNG."""
    scene.render.filepath = str(path)
    # With only ``scene=``, animation is evaluated at the *context* scene's frame; the override
    # makes the render use this scene's own frame (the rest frame of a temporary scene).
    with bpy.context.temp_override(scene=scene):
        bpy.ops.render.render(write_still=True, scene=scene.name)
    if not path.is_file():
        raise OSError(f"Blender did not write the render {path}")
    return path


def _load_rgba(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGBA"))


def _save_png(arr: np.ndarray, path: Path) -> Path:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)  # fast; the PDF re-encodes
    return atomic_write_bytes(path, buf.getvalue())


def soften_edges(rgba: np.ndarray, strength: float = 0.6) -> np.ndarray:
    """Cheap anti-aliasing of an RGBA uint8 image: blend a 3×3 box blur in where the image
    has edges (luminance or alpha steps), leave flat areas untouched.

    Stands in for Workbench's FXAA, which costs ~0.37 s per 800×600 render on software GL;
    this costs ~15 ms (all in Pillow's C code). Works on premultiplied colour (Pillow's
    ``RGBa``), so silhouettes blend into transparency.
    """
    from PIL import Image, ImageChops, ImageFilter

    im = Image.fromarray(np.ascontiguousarray(rgba), "RGBA").convert("RGBa")
    blur = im.filter(ImageFilter.BoxBlur(1))
    b, bb = im.split(), blur.split()
    lum = ImageChops.difference(
        Image.merge("RGB", b[:3]).convert("L"), Image.merge("RGB", bb[:3]).convert("L")
    )
    edge = ImageChops.add(lum, ImageChops.difference(b[3], bb[3]))
    top = round(255 * strength)
    weight = edge.point([min(top, round(v * 8 * strength)) for v in range(256)])
    return np.asarray(Image.composite(blur, im, weight).convert("RGBA"))


#: Render only the part of a step's frame the bricks so far can cover (see :func:`crop_box`).
CROP_TO_CONTENT = True
#: Pixels kept around the bricks' projected boxes when only that part of a step's frame is
#: rendered: the highlight outline, the edge softening and Workbench's own object outline.
CROP_PAD = HIGHLIGHT_WIDTH + 3


def crop_box(view, lo, hi, pad: int = CROP_PAD) -> tuple[int, int, int, int] | None:
    """The part of ``view``'s frame worth rendering: what the boxes ``lo`` … ``hi`` can
    cover, grown by ``pad``, its corners on even pixels (so the half-size mask samples the
    same grid as it would for the whole frame); ``None`` if that is the whole frame or
    nothing."""
    rect = view.box_rect(lo, hi, pad)
    if rect is None:
        return None
    c0, r0, c1, r1 = rect
    w, h = view.resolution
    a = max(1, round(1 / ID_SCALE))
    c0, r0 = c0 - c0 % a, r0 - r0 % a
    c1, r1 = min(w, c1 + (-c1) % a), min(h, r1 + (-r1) % a)
    if (c1 - c0) * (r1 - r0) >= w * h or min(c1 - c0, r1 - r0) < 16:
        return None
    return c0, r0, c1, r1


def uncrop(rgba: np.ndarray, box: tuple[int, int, int, int], resolution) -> np.ndarray:
    """A cropped RGBA render put back at ``box`` of a transparent ``resolution`` frame."""
    out = np.zeros((int(resolution[1]), int(resolution[0]), 4), np.uint8)
    c0, r0, c1, r1 = box
    out[r0:r1, c0:c1] = rgba
    return out


def upscale_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A bool mask rendered at a smaller size, resized to ``shape`` (rows, cols) smoothly."""
    from PIL import Image

    if mask.shape == tuple(shape):
        return mask
    im = Image.fromarray((mask * 255).astype(np.uint8)).resize((shape[1], shape[0]), Image.BILINEAR)
    return np.asarray(im) > 127


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` grown by ``radius`` pixels (a square), by shifted ORs (no rank filter)."""
    out = mask.copy()
    for _ in range(radius):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def compose_step(full: np.ndarray, mask: np.ndarray, first: bool = False) -> np.ndarray:
    """Lighten everything outside ``mask`` slightly and outline the masked (new) bricks.

    ``full``: RGBA uint8 render of steps ≤ s; ``mask``: bool, pixels showing step s.
    Earlier bricks keep their colours (only mixed :data:`FADE_TO_WHITE` towards white); the
    outline is :data:`HIGHLIGHT_WIDTH` pixels of :data:`HIGHLIGHT_RGB` around the new bricks.
    """
    from PIL import Image

    out = np.ascontiguousarray(full, dtype=np.uint8)
    if not first and FADE_TO_WHITE > 0:
        keep = round((1 - FADE_TO_WHITE) * 256)
        add = round(FADE_TO_WHITE * 255 * 256)
        lut = [min(255, (v * keep + add) >> 8) for v in range(256)]
        im = Image.fromarray(out, "RGBA")
        faded = im.point(lut * 3 + list(range(256)))  # colour lightened, alpha kept
        keep_mask = Image.fromarray(mask.astype(np.uint8) * 255, "L")
        out = np.array(Image.composite(im, faded, keep_mask))
    else:
        out = out.copy()
    if HIGHLIGHT_WIDTH > 0 and mask.any():
        ring = dilate(mask, HIGHLIGHT_WIDTH) & ~mask
        out[ring] = (*HIGHLIGHT_RGB, 255)
    return out


class _SceneState:
    """Remembers and restores the shared object state the renders change."""

    def __init__(self, objects: Iterable[bpy.types.Object]):
        self.objects = list(objects)
        self.saved = [(o, o.hide_render, tuple(o.color)) for o in self.objects]

    def restore(self) -> None:
        for o, hide, color in self.saved:
            try:
                o.hide_render = hide
                o.color = color
            except ReferenceError:  # object deleted meanwhile
                pass


def _temp_scene(name: str, resolution) -> bpy.types.Scene:
    sc = bpy.data.scenes.new(name)
    _setup_workbench(sc, resolution)
    cam = bpy.data.cameras.new(f"{name} camera")
    cam_ob = bpy.data.objects.new(f"{name} camera", cam)
    sc.collection.objects.link(cam_ob)
    sc.camera = cam_ob
    sc.frame_current = _REST_FRAME
    return sc


def _delete_temp_scene(sc) -> None:
    cam_ob = sc.camera
    cam = cam_ob.data if cam_ob is not None else None
    bpy.data.scenes.remove(sc)
    if cam_ob is not None:
        bpy.data.objects.remove(cam_ob)
    if cam is not None and cam.users == 0:
        bpy.data.cameras.remove(cam)


def _evaluated_bounds(sc, collection):
    """Model bounds as ``sc`` sees it (at its own frame, i.e. at rest for a temp scene)."""
    with bpy.context.temp_override(scene=sc, view_layer=sc.view_layers[0]):
        dg = bpy.context.evaluated_depsgraph_get()
        dg.update()
        return model_bounds(collection, dg)


def _at_rest(collection, lo, hi, whole, tol: float = 2e-4) -> bool:
    """Whether the scene shows the model where :mod:`.scene` put it: step parents untransformed
    and the evaluated bounds equal to the model's own (within ``tol`` metres: the parts'
    0.1 mm clearance)."""
    ident = np.eye(4)
    for p in lego_scene.step_parents(collection):
        if not np.allclose(np.array(p.matrix_world), ident, atol=1e-9):
            return False
    if not len(lo):
        return False
    return bool(
        np.allclose(whole[0], lo.min(axis=0), atol=tol)
        and np.allclose(whole[1], hi.max(axis=0), atol=tol)
    )


# --------------------------------------------------------------------------- rendering


def render_steps(
    context,
    collection,
    out_dir,
    resolution=(800, 600),
    *,
    cover: bool = True,
    thumbnails: bool = True,
    thumb_size: int = THUMB_SIZE,
    steps: bool = True,
    back: bool | None = None,
    timings: dict | None = None,
) -> Generator[Progress, None, list[Path]]:
    """Render one image per build step into ``out_dir`` (a step generator).

    Writes ``step_001.png`` …, and unless switched off ``cover.png`` (the finished model,
    unfaded), ``back.png`` (the same from behind; default: with the cover when rendering
    steps) and ``parts/<part>_<colour>.png`` thumbnails; ``steps=False`` renders only those
    (e.g. a single picture of the finished model). Yields :class:`Progress`; returns
    the step image paths in step order. Closing the generator early (ESC) restores the scene.
    ``timings`` (a dict) receives the seconds spent per phase.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise ValueError(f"output folder {out_dir} does not exist")
    res = (int(resolution[0]), int(resolution[1]))
    if min(res) < 16:
        raise ValueError(f"resolution {resolution} is too small (need at least 16×16)")
    if back is None:
        back = cover and steps
    all_groups = step_groups(collection)
    all_objects = [o for _, _, obs in all_groups for o in obs]
    groups = all_groups if steps else []
    n = len(groups)
    total = n + (1 if cover else 0) + (1 if back else 0) + (1 if thumbnails else 0)
    aspect = res[0] / res[1]
    id_res = (max(16, round(res[0] * ID_SCALE)), max(16, round(res[1] * ID_SCALE)))
    tm = timings if timings is not None else {}
    tm.setdefault("steps_s", 0.0)
    tm.setdefault("step_times", [])
    tm.setdefault("step_cpu_times", [])

    model = lego_scene.model_from_collection(collection)
    lo, hi, brick_step = brick_boxes(model)
    state = _SceneState(all_objects)
    sc = _temp_scene("Image2LEGO instructions", res)
    sc.collection.children.link(collection)
    tmp = Path(tempfile.mkdtemp(prefix=".i2l-render-", dir=out_dir))
    paths: list[Path] = []
    try:
        bmin, bmax = _evaluated_bounds(sc, collection)
        whole = (bmin, bmax)
        # The new bricks' pixels come from casting rays against the model's bricks (~0.1 s
        # CPU less per step than a second, ID-coloured render) when the scene shows the model
        # where the scene module placed it; if anything was moved, from the ID render.
        analytic = _at_rest(collection, lo, hi, whole)
        # Each step only touches its own objects (O(bricks) in all, not O(bricks × steps)):
        # everything starts hidden and black (the ID pass colour of "not new"); a step is
        # shown, white for its ID pass, then black again.
        for o in all_objects:
            o.hide_render = True
            o.color = (0, 0, 0, 1)
        for k, (step, _parent, objects) in enumerate(groups):
            yield Progress(k / total, f"Rendering step {k + 1} of {n}")
            t0, c0 = time.perf_counter(), time.process_time()
            for o in objects:
                o.hide_render = False
            if (brick_step == step).any():
                vlo, vhi = step_view_box(lo, hi, brick_step, step)
            else:  # a step parent without bricks in the model record: frame everything
                vlo, vhi = whole
            cam = place_camera(sc.camera, vlo, vhi, aspect, scene_box=whole)
            # Only the pixels the bricks built so far can cover are rendered (about half
            # the frame): the camera moves sideways onto that rectangle, on the same pixel
            # grid, and the picture is put back in its place in the frame.
            box = None
            if analytic and CROP_TO_CONTENT:
                sofar = brick_step <= step
                box = crop_box(OrthoView(cam[0], cam[1], cam[2], res), lo[sofar], hi[sofar])
            view = OrthoView(cam[0], cam[1], cam[2], res)
            if box is not None:
                view = view.crop(box)
                sc.camera.data.ortho_scale = view.ortho_scale
                mw = sc.camera.matrix_world.copy()
                mw.translation = Vector(view.location)
                sc.camera.matrix_world = mw
            _setup_workbench(sc, view.resolution, fxaa=False, cavity=False)
            # (Computing the mask in a worker thread during the render crashed: Blender gives
            # up the GIL inside bpy.ops but is not safe against Python running meanwhile.)
            full = _load_rgba(_render_to(sc, tmp / "full.png"))
            if analytic:
                w, h = view.resolution
                mask_view = OrthoView(
                    view.location, view.basis, view.ortho_scale,
                    (max(1, round(w * ID_SCALE)), max(1, round(h * ID_SCALE))),
                )  # fmt: skip
                new = front_mask(model, mask_view, brick_step == step, brick_step <= step)
            else:
                for o in objects:
                    o.color = (1, 1, 1, 1)
                _setup_workbench(sc, id_res, id_pass=True)
                ids = _load_rgba(_render_to(sc, tmp / "id.png"))
                new = (ids[..., 0] > 127) & (ids[..., 3] > 127)
                for o in objects:
                    o.color = (0, 0, 0, 1)
            paths.append(
                _finish_step(full, new, k == 0, box, res, out_dir / f"step_{step + 1:03d}.png")
            )
            tm["step_times"].append(time.perf_counter() - t0)
            tm["step_cpu_times"].append(time.process_time() - c0)
            tm["steps_s"] += tm["step_times"][-1]
        t0 = time.perf_counter()
        if cover or back:
            for o in all_objects:
                o.hide_render = False
            _setup_workbench(sc, res)
        views = [("cover.png", CAMERA_AZIMUTH)] if cover else []
        if back:
            views.append(("back.png", CAMERA_AZIMUTH + 180.0))
        for i, (name, azimuth) in enumerate(views):
            what = "the cover" if name == "cover.png" else "the model from behind"
            yield Progress((n + i) / total, f"Rendering {what}")
            place_camera(sc.camera, bmin, bmax, aspect, azimuth_deg=azimuth)
            full = _load_rgba(_render_to(sc, tmp / "full.png"))
            _save_png(full, out_dir / name)
        tm["views_s"] = time.perf_counter() - t0
        if thumbnails:
            yield Progress((total - 1) / total, "Rendering part thumbnails")
            t0 = time.perf_counter()
            state.restore()
            pairs = sorted({key for d in parts_by_step(collection) for key in d})
            render_thumbnails(pairs, out_dir / "parts", thumb_size)
            tm["thumbnails_s"] = time.perf_counter() - t0
        yield Progress(1.0, f"Rendered {n} steps")
    finally:
        state.restore()
        _delete_temp_scene(sc)
        shutil.rmtree(tmp, ignore_errors=True)
    return paths


def _finish_step(full, new, first: bool, box, resolution, path: Path) -> Path:
    """A step's page picture from its render and its new bricks' mask: edges softened, the
    new bricks outlined, put back in the frame (``box``: where a cropped render goes) and
    written to ``path``."""
    full = soften_edges(full)
    img = compose_step(full, upscale_mask(new, full.shape[:2]), first=first)
    if box is not None:
        img = uncrop(img, box, resolution)
    return _save_png(img, path)


def thumbnail_name(part_id: str, color: int) -> str:
    return f"{part_id}_{int(color)}.png"


def render_thumbnails(
    pairs: Iterable[tuple[str, int]], out_dir, size: int = THUMB_SIZE
) -> dict[tuple[str, int], Path]:
    """Render each ``(part_id, colour)`` once, alone, in the instruction style.

    Uses the shared part meshes and colour materials of :mod:`.parts_mesh` /
    :mod:`.materials` (so the same for both instancing methods); anything this creates only for
    the thumbnails is deleted again. Returns ``{(part, colour): path}``.
    """
    from . import materials as mats
    from .parts_mesh import get_part_mesh

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pairs = list(dict.fromkeys((str(p), int(c)) for p, c in pairs))
    meshes_before = set(bpy.data.meshes)
    mats_before = set(bpy.data.materials)
    sc = _temp_scene("Image2LEGO part thumbnails", (size, size))
    tmp = Path(tempfile.mkdtemp(prefix=".i2l-thumb-", dir=out_dir))
    out: dict[tuple[str, int], Path] = {}
    try:
        for pid, color in pairs:
            ob = bpy.data.objects.new(f"i2l thumb {pid}", get_part_mesh(pid))
            try:
                slot = ob.material_slots[0]
                slot.link = "OBJECT"
                slot.material = mats.get_color_material(color)
                sc.collection.objects.link(ob)
                me = ob.data
                co = np.zeros(len(me.vertices) * 3, np.float32)
                me.vertices.foreach_get("co", co)
                co = co.reshape(-1, 3)
                place_camera(sc.camera, co.min(axis=0), co.max(axis=0), 1.0)
                arr = _load_rgba(_render_to(sc, tmp / "thumb.png"))
                out[(pid, color)] = _save_png(arr, out_dir / thumbnail_name(pid, color))
            finally:
                bpy.data.objects.remove(ob)
    finally:
        _delete_temp_scene(sc)
        shutil.rmtree(tmp, ignore_errors=True)
        new_meshes = [m for m in bpy.data.meshes if m not in meshes_before and m.users == 0]
        new_mats = [m for m in bpy.data.materials if m not in mats_before and m.users == 0]
        bpy.data.batch_remove(new_meshes + new_mats)
    return out


# --------------------------------------------------------------------------- whole booklet


def check_output_dir(path) -> Path:
    """See :func:`image2lego.lego.fileio.check_output_dir` (creates nothing)."""
    from ..lego.fileio import check_output_dir as check

    return check(path)


def render_instructions(
    context,
    collection,
    out_dir,
    resolution=(800, 600),
    title: str | None = None,
) -> Generator[Progress, None, InstructionsResult]:
    """Render every step, the cover and part thumbnails, and write the booklet.

    Result in ``out_dir``: ``instructions.html``, ``instructions.pdf`` and the folder
    ``instructions_images/`` they use. Everything is built in a hidden staging folder first
    and moved into place at the end, so a failure or a cancel leaves ``out_dir`` as it was
    (a folder this created is removed again).
    """
    from ..core import booklet

    out_dir = check_output_dir(out_dir)
    model = lego_scene.model_from_collection(collection)
    title = title or collection.get(lego_scene.MARK_KEY) or collection.name
    # the one all-or-nothing writer (lego.staging): built in a hidden staging folder inside
    # out_dir and swapped in together at the end; a failure or a cancel (the generator closed)
    # leaves out_dir as it was, and a folder this created is removed again
    with staged_output(out_dir) as stage:
        images = stage / IMAGES_DIRNAME
        images.mkdir()
        t0, c0 = time.perf_counter(), time.process_time()
        phases: dict = {}
        gen = render_steps(context, collection, images, resolution, timings=phases)
        step_paths = yield from scaled(gen, 0.0, 0.9)
        t_render = time.perf_counter() - t0
        c_render = time.process_time() - c0
        yield Progress(0.92, "Writing the booklet")
        t1, c1 = time.perf_counter(), time.process_time()
        per_step = parts_by_step(collection)
        thumbs = {
            key: images / "parts" / thumbnail_name(*key)
            for key in model.part_counts()
            if (images / "parts" / thumbnail_name(*key)).is_file()
        }
        html, pdf = booklet.build_booklet(
            stage,
            title=title,
            cover=images / "cover.png",
            back=images / "back.png",
            step_images=step_paths,
            step_parts=per_step,
            thumbnails=thumbs,
            n_bricks=len(model.bricks),
            step_labels=booklet.substep_labels(step_layers(model)),
        )
        t_booklet = time.perf_counter() - t1
        c_booklet = time.process_time() - c1
    final_images = out_dir / IMAGES_DIRNAME
    yield Progress(1.0, f"Instructions written to {out_dir}")
    return InstructionsResult(
        html=out_dir / html.name,
        pdf=out_dir / pdf.name,
        step_images=[final_images / p.name for p in step_paths],
        cover=final_images / "cover.png",
        thumbnails={k: final_images / "parts" / v.name for k, v in thumbs.items()},
        timings={
            "render_s": t_render,
            "render_s_per_step": t_render / max(1, len(step_paths)),
            "step_s_per_step": phases.get("steps_s", 0.0) / max(1, len(step_paths)),
            "step_times": list(phases.get("step_times", [])),
            "step_cpu_times": list(phases.get("step_cpu_times", [])),
            "views_s": phases.get("views_s", 0.0),
            "thumbnails_s": phases.get("thumbnails_s", 0.0),
            "render_cpu_s": c_render,
            "booklet_s": t_booklet,
            "booklet_cpu_s": c_booklet,
            "steps": len(step_paths),
        },
    )


run = progress_run  # drive a step generator to the end (lego.progress.run)

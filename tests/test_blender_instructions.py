"""Per-step instruction renders and the booklet, in real Blender (Workbench, headless)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from image2lego.lego.bricks import Brick, BrickModel

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.bpy

from image2lego.blender import instructions as ins  # noqa: E402
from image2lego.blender import scene as lego_scene  # noqa: E402
from image2lego.core.booklet import page_groups, pdf_page_count  # noqa: E402
from image2lego.operators import instructions as ops_ins  # noqa: E402

RES = (160, 120)

# Three steps: a red 2x4 + blue 2x2 base, a yellow 2x4 across it, a white 1x2 plate on top.
MODEL = BrickModel(
    [
        Brick(0, 0, 0, "3001", False, 4, 0),
        Brick(0, 2, 0, "3003", False, 1, 0),
        Brick(3, 0, 1, "3001", True, 14, 1),
        Brick(6, 1, 1, "3023", False, 15, 2),
    ],
    (4, 4, 7),
)


def _fresh(method="objects"):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return lego_scene.build_model(bpy.context, MODEL, name="Tiny", method=method)


@pytest.fixture(scope="module")
def registered():
    mine = [c for c in ops_ins.classes if not getattr(c, "is_registered", False)]
    for cls in mine:
        bpy.utils.register_class(cls)
    yield
    for cls in reversed(mine):
        bpy.utils.unregister_class(cls)


def _rgba(p):
    return np.asarray(Image.open(p).convert("RGBA"))


def _snapshot():
    sc = bpy.context.scene
    r = sc.render
    return {
        "scenes": sorted(s.name for s in bpy.data.scenes),
        "objects": sorted(o.name for o in bpy.data.objects),
        "hide": sorted((o.name, o.hide_render, o.hide_viewport) for o in bpy.data.objects),
        "color": sorted((o.name, tuple(round(c, 6) for c in o.color)) for o in bpy.data.objects),
        "engine": r.engine,
        "res": (r.resolution_x, r.resolution_y, r.resolution_percentage),
        "filepath": r.filepath,
        "film": r.film_transparent,
        "view": sc.view_settings.view_transform,
        "camera": sc.camera.name if sc.camera else None,
        "frame": sc.frame_current,
        "shading": (sc.display.shading.light, sc.display.shading.color_type),
        "meshes": sorted(m.name for m in bpy.data.meshes),
        "materials": sorted(m.name for m in bpy.data.materials),
        "cameras": sorted(c.name for c in bpy.data.cameras),
        "collections": sorted(c.name for c in bpy.data.collections),
    }


@pytest.mark.parametrize("method", ["objects", "geonodes"])
def test_one_image_per_step_new_bricks_highlighted(tmp_path, method):
    coll = _fresh(method)
    before = _snapshot()
    paths = ins.run(ins.render_steps(bpy.context, coll, tmp_path, RES))
    assert _snapshot() == before  # render settings, camera, visibility, data all as they were

    assert [p.name for p in paths] == ["step_001.png", "step_002.png", "step_003.png"]
    imgs = [_rgba(p) for p in paths]
    opaque = [im[..., 3] > 0 for im in imgs]
    for im, op in zip(imgs, opaque, strict=True):
        assert im.shape == (RES[1], RES[0], 4)
        assert op.sum() > 300  # non-empty
        hl = np.all(im[..., :3] == ins.HIGHLIGHT_RGB, axis=-1) & (im[..., 3] == 255)
        assert hl.sum() > 20  # the new step is outlined
    for a, b in zip(imgs, imgs[1:], strict=False):
        assert np.abs(a.astype(int) - b.astype(int)).sum() > 1000  # consecutive steps differ
    # Each step's camera frames that step: step 1 (two bricks) is drawn larger than the
    # frame for the whole model (the cover) draws the same red brick.
    ys, xs = np.nonzero(opaque[0])
    fill = max((xs.max() - xs.min() + 1) / RES[0], (ys.max() - ys.min() + 1) / RES[1])
    assert fill > 0.45

    def red_px(im):
        rgb = im[..., :3].astype(int)
        return ((rgb[..., 0] > rgb[..., 1] + 60) & (rgb[..., 0] > rgb[..., 2] + 60)
                & (im[..., 3] > 0)).sum()  # fmt: skip

    assert red_px(imgs[0]) > 1.15 * red_px(_rgba(tmp_path / "cover.png"))
    # Earlier bricks keep their colours: step 1's red brick is still red in step 2 and 3.
    for im in imgs[1:]:
        rgb = im[..., :3].astype(int)
        hl = np.all(im[..., :3] == ins.HIGHLIGHT_RGB, axis=-1)
        red = (rgb[..., 0] > rgb[..., 1] + 60) & (rgb[..., 0] > rgb[..., 2] + 60) & ~hl
        assert (red & (im[..., 3] > 0)).sum() > 50
    # The finished model from behind differs from the cover.
    cover, back = _rgba(tmp_path / "cover.png"), _rgba(tmp_path / "back.png")
    assert np.abs(cover.astype(int) - back.astype(int)).sum() > 1000
    # Cover (unfaded finished model) and one thumbnail per (part, colour).
    assert (tmp_path / "cover.png").is_file()
    thumbs = sorted(p.name for p in (tmp_path / "parts").iterdir())
    assert thumbs == sorted(ins.thumbnail_name(p, c) for p, c in MODEL.part_counts())
    for t in thumbs:
        assert (_rgba(tmp_path / "parts" / t)[..., 3] > 0).sum() > 200
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files


@pytest.mark.parametrize("method", ["objects", "geonodes"])
def test_ray_cast_new_brick_mask_matches_the_id_render(tmp_path, method):
    """The new bricks' pixels from lego.visibility are the ones an ID-coloured Workbench render
    shows, step by step (IoU ≥ 0.97 at 400×300; edges differ by anti-aliasing only)."""
    from image2lego.lego.visibility import OrthoView, front_mask

    coll = _fresh(method)
    res = (400, 300)
    sc = ins._temp_scene("cmp", res)
    sc.collection.children.link(coll)
    try:
        whole = ins._evaluated_bounds(sc, coll)
        lo, hi, step_of = ins.brick_boxes(MODEL)
        assert ins._at_rest(coll, lo, hi, whole)
        groups = ins.step_groups(coll)
        for _, _, obs in groups:
            for o in obs:
                o.hide_render, o.color = True, (0, 0, 0, 1)
        for step, _, obs in groups:
            for o in obs:
                o.hide_render, o.color = False, (1, 1, 1, 1)
            vlo, vhi = ins.step_view_box(lo, hi, step_of, step)
            loc, rot, scale = ins.place_camera(sc.camera, vlo, vhi, 4 / 3, scene_box=whole)
            ins._setup_workbench(sc, res, id_pass=True)
            ids = ins._load_rgba(ins._render_to(sc, tmp_path / f"id{step}.png"))
            want = (ids[..., 0] > 127) & (ids[..., 3] > 127)
            got = front_mask(
                MODEL, OrthoView(loc, rot, scale, res), step_of == step, step_of <= step
            )
            assert want.sum() > 500
            assert (got & want).sum() / (got | want).sum() >= 0.97, step
            for o in obs:
                o.color = (0, 0, 0, 1)
    finally:
        ins._delete_temp_scene(sc)


@pytest.mark.parametrize("method", ["objects", "geonodes"])
def test_rendering_only_the_bricks_rectangle_gives_the_whole_frames_pictures(
    tmp_path, method, monkeypatch
):
    """Each step renders only the rectangle its bricks can cover (same pixel grid), put back
    in the frame: the pictures are those of rendering the whole frame, up to a few edge
    pixels that rounding puts on the other side of an edge."""
    coll = _fresh(method)
    res = (240, 180)
    crops = []
    real = ins.crop_box
    monkeypatch.setattr(ins, "crop_box", lambda *a, **k: crops.append(real(*a, **k)) or crops[-1])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    kw = {"cover": False, "thumbnails": False}
    cropped = ins.run(ins.render_steps(bpy.context, coll, tmp_path / "a", res, **kw))
    assert len(crops) == 3 and all(c is not None for c in crops)
    assert sum((c[2] - c[0]) * (c[3] - c[1]) for c in crops) < 0.8 * 3 * res[0] * res[1]
    monkeypatch.setattr(ins, "CROP_TO_CONTENT", False)
    whole = ins.run(ins.render_steps(bpy.context, coll, tmp_path / "b", res, **kw))
    for a, b in zip(cropped, whole, strict=True):
        x, y = _rgba(a).astype(int), _rgba(b).astype(int)
        assert x.shape == y.shape == (res[1], res[0], 4)
        # colour weighted by coverage (fully transparent pixels' colour is never seen)
        px, py = x[..., :3] * x[..., 3:] // 255, y[..., :3] * y[..., 3:] // 255
        d = np.maximum(np.abs(px - py).max(-1), np.abs(x[..., 3] - y[..., 3]))
        assert (d > 40).sum() <= 0.002 * d.size, (d > 40).sum()
        assert (y[..., 3] > 0).sum() > 1000


def test_a_moved_model_falls_back_to_the_id_render(tmp_path):
    coll = _fresh()
    lo, hi, _ = ins.brick_boxes(MODEL)
    sc = ins._temp_scene("cmp", RES)
    sc.collection.children.link(coll)
    try:
        assert ins._at_rest(coll, lo, hi, ins._evaluated_bounds(sc, coll))
        lego_scene.step_parents(coll)[1].location.x += 0.05
        assert not ins._at_rest(coll, lo, hi, ins._evaluated_bounds(sc, coll))
    finally:
        ins._delete_temp_scene(sc)
    # and the renders still outline the new bricks (through the ID pass)
    paths = ins.run(ins.render_steps(bpy.context, coll, tmp_path, RES, thumbnails=False))
    im = _rgba(paths[1])
    assert (np.all(im[..., :3] == ins.HIGHLIGHT_RGB, axis=-1) & (im[..., 3] == 255)).sum() > 20


def test_cancel_midway_restores_scene(tmp_path):
    coll = _fresh()
    before = _snapshot()
    gen = ins.render_steps(bpy.context, coll, tmp_path, RES)
    next(gen)
    next(gen)  # step 1 rendered, the hidden temp scene exists now
    assert len(bpy.data.scenes) == 2
    gen.close()  # what ESC does
    assert _snapshot() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_parts_by_step_matches_model():
    coll = _fresh("geonodes")
    per = ins.parts_by_step(coll)
    assert per == [{("3001", 4): 1, ("3003", 1): 1}, {("3001", 14): 1}, {("3023", 15): 1}]


def test_operator_writes_booklet(tmp_path, registered):
    _fresh()
    out = tmp_path / "new" / "folder"  # created on demand
    assert bpy.ops.image2lego.render_instructions(directory=str(out), width=160, height=120) == {
        "FINISHED"
    }
    html = (out / "instructions.html").read_text()
    srcs = set(re.findall(r'src="([^"]+)"', html))
    images = out / ins.IMAGES_DIRNAME
    every = {p.relative_to(out).as_posix() for p in images.rglob("*.png")}
    assert every == srcs  # the HTML references every image, and only existing ones
    assert {f"{ins.IMAGES_DIRNAME}/step_00{i}.png" for i in (1, 2, 3)} <= srcs
    groups = page_groups(ins.parts_by_step(lego_scene.find_model_collection(bpy.context)))
    assert len(groups) < MODEL.n_steps()  # its small steps share pages
    assert pdf_page_count(out / "instructions.pdf") == len(groups) + 3
    assert sorted(p.name for p in out.iterdir()) == [
        "instructions.html",
        "instructions.pdf",
        ins.IMAGES_DIRNAME,
    ]
    # Re-running replaces the output cleanly.
    assert bpy.ops.image2lego.render_instructions(directory=str(out), width=160, height=120) == {
        "FINISHED"
    }
    assert sorted(p.name for p in out.iterdir())[-1] == ins.IMAGES_DIRNAME
    assert len(list(out.iterdir())) == 3


def test_operator_unwritable_folder_reports_and_leaves_nothing(tmp_path, registered):
    _fresh()
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    before = _snapshot()
    with pytest.raises(RuntimeError, match="not a folder"):
        bpy.ops.image2lego.render_instructions(directory=str(blocker / "out"))
    assert _snapshot() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]
    with pytest.raises(RuntimeError, match="output folder"):
        bpy.ops.image2lego.render_instructions(directory="")  # nothing set anywhere


def test_failure_midway_removes_created_folder(tmp_path, monkeypatch):
    coll = _fresh()
    out = tmp_path / "made" / "here"

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("image2lego.core.booklet.build_booklet", boom)
    before = _snapshot()
    with pytest.raises(OSError, match="disk full"):
        ins.run(ins.render_instructions(bpy.context, coll, out, RES))
    assert _snapshot() == before
    assert list(tmp_path.iterdir()) == []


def test_poll_needs_a_model(registered):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert not bpy.ops.image2lego.render_instructions.poll()
    _fresh()
    assert bpy.ops.image2lego.render_instructions.poll()


def test_bad_arguments():
    coll = _fresh()
    with pytest.raises(ValueError, match="does not exist"):
        next(ins.render_steps(bpy.context, coll, "/nonexistent/dir", RES))
    with pytest.raises(ValueError, match="too small"):
        next(ins.render_steps(bpy.context, coll, "/tmp", (8, 8)))
    with pytest.raises(ValueError, match="invalid bounding box"):
        ins.frame_box((0, 0, 1), (1, 1, 0), 1.0)


def test_step_view_box_frames_the_step_and_its_neighbourhood():
    # A 20×20 base of 2×2 bricks (step 0) and one 1×2 plate on top in a corner (step 1).
    bricks = [Brick(0, y, x, "3003", False, 4, 0) for x in range(0, 20, 2) for y in range(0, 20, 2)]
    bricks.append(Brick(3, 0, 0, "3023", False, 15, 1))  # Brick(z, y, x, ...)
    lo, hi, steps = ins.brick_boxes(BrickModel(bricks, (20, 20, 4)))
    vlo, vhi = ins.step_view_box(lo, hi, steps, 1)
    new = steps == 1
    assert np.all(vlo <= lo[new].min(axis=0) + 1e-9) and np.all(vhi >= hi[new].max(axis=0) - 1e-9)
    whole = hi.max(axis=0) - lo.min(axis=0)
    span = vhi - vlo
    assert span[0] < 0.5 * whole[0] and span[1] < 0.5 * whole[1]  # zoomed in on the corner
    assert span[0] >= ins.MIN_VIEW_STUDS * 0.008 - 1e-9  # but never closer than a few studs
    assert vlo[2] <= lo[~new].min(axis=0)[2] + 1e-9  # the layer it stands on is in view
    with pytest.raises(ValueError, match="no bricks"):
        ins.step_view_box(lo, hi, steps, 5)


@settings(max_examples=60, deadline=None)
@given(
    lo=st.tuples(*[st.floats(-1, 1)] * 3),
    size=st.tuples(*[st.floats(0.001, 2)] * 3),
    aspect=st.floats(0.3, 3),
    el=st.floats(5, 85),
    az=st.floats(-180, 180),
)
def test_frame_box_contains_every_corner(lo, size, aspect, el, az):
    lo = np.array(lo)
    hi = lo + np.array(size)
    loc, rot, scale, _dist = ins.frame_box(lo, hi, aspect, el, az)
    assert np.allclose(rot.T @ rot, np.eye(3), atol=1e-9)
    half_w = scale / 2 if aspect >= 1 else scale * aspect / 2
    half_h = half_w / aspect
    tight = 0.0
    for c in np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)]):
        p = (lo + c * (hi - lo) - loc) @ rot
        assert p[2] < 0  # in front of the camera (it looks down -Z)
        assert abs(p[0]) <= half_w * (1 + 1e-9) and abs(p[1]) <= half_h * (1 + 1e-9)
        tight = max(tight, abs(p[0]) / half_w, abs(p[1]) / half_h)
    # Fills the frame up to the margin on the tighter side.
    assert math.isclose(tight, 1 / (1 + 2 * ins.CAMERA_MARGIN), rel_tol=1e-6)


def test_compose_step_lightens_old_keeps_new_and_outlines_it():
    full = np.zeros((40, 60, 4), np.uint8)
    full[..., :3] = (200, 20, 20)  # red everywhere (old bricks)
    full[..., 3] = 255
    mask = np.zeros((40, 60), bool)
    mask[10:20, 20:30] = True  # the new bricks
    out = ins.compose_step(full, mask)
    assert (out[mask][:, :3] == (200, 20, 20)).all()  # new bricks untouched
    far = out[30:, :10, :3].reshape(-1, 3)
    assert (far[:, 1] > 20).all() and (far[:, 0] >= 200).all()  # old ones lightened only
    assert (far[:, 0] > far[:, 1] + 100).all()  # ... and still red
    ring = np.all(out[..., :3] == ins.HIGHLIGHT_RGB, axis=-1)
    assert ring[9, 25] and ring[20, 25] and ring[15, 19] and ring[15, 30]
    assert not ring[mask].any() and not ring[30, 5]
    first = ins.compose_step(full, mask, first=True)
    assert (first[30:, :10] == full[30:, :10]).all()  # step 1: nothing to fade


def test_soften_edges_blurs_edges_only():
    im = np.zeros((30, 30, 4), np.uint8)
    im[:, :15] = (255, 255, 255, 255)
    im[:, 15:] = (0, 0, 0, 255)
    out = ins.soften_edges(im)
    assert (out[:, :12] == im[:, :12]).all() and (out[:, 18:] == im[:, 18:]).all()
    assert 0 < out[15, 14, 0] < 255 or 0 < out[15, 15, 0] < 255  # the edge is softened
    assert (out[..., 3] == 255).all()

"""Keyframed build animation in real Blender: keys per step, scrubbing, camera, clearing."""

from __future__ import annotations

import numpy as np
import pytest

from image2lego.lego.bricks import Brick, BrickModel

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.bpy

from bpy_extras.anim_utils import action_get_channelbag_for_slot  # noqa: E402
from bpy_extras.object_utils import world_to_camera_view  # noqa: E402
from mathutils import Vector  # noqa: E402

from image2lego.blender import animation as anim  # noqa: E402
from image2lego.blender import scene as lego_scene  # noqa: E402
from image2lego.operators import animation as ops_anim  # noqa: E402

MODEL = BrickModel(
    [
        Brick(0, 0, 0, "3001", False, 4, 0),
        Brick(0, 2, 0, "3001", False, 1, 0),
        Brick(3, 0, 1, "3001", True, 14, 1),
        Brick(3, 1, 3, "3003", False, 2, 1),
        Brick(6, 1, 1, "3020", False, 15, 2),
        Brick(7, 1, 2, "3024", False, 0, 3),
    ],
    (5, 4, 8),
)
STEP_OF = [b.step for b in MODEL.bricks]
FPS = 6


def _fresh(method):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return lego_scene.build_model(bpy.context, MODEL, name="Anim", method=method)


def _instances(coll):
    """``[(step, world matrix)]`` of every mesh instance the model shows right now."""
    dg = bpy.context.evaluated_depsgraph_get()
    mine = {o.name_full for o in coll.all_objects}
    out = []
    for inst in dg.object_instances:
        owner = inst.parent if inst.is_instance else inst.object
        ob = inst.object
        if ob.type == "MESH" and len(ob.data.polygons) and owner.original.name_full in mine:
            out.append((int(owner.original["i2l_step"]), np.array(inst.matrix_world)))
    return out


def _visible(coll, steps=None):
    """Sorted positions of visible (non-zero scale) instances, optionally of some steps."""
    return sorted(
        tuple(np.round(m[:3, 3], 6))
        for s, m in _instances(coll)
        if abs(np.linalg.det(m[:3, :3])) > 1e-9 and (steps is None or s in steps)
    )


@pytest.fixture(scope="module")
def registered():
    mine = [c for c in ops_anim.classes if not getattr(c, "is_registered", False)]
    for cls in mine:
        bpy.utils.register_class(cls)
    yield
    for cls in reversed(mine):
        bpy.utils.unregister_class(cls)


@pytest.mark.parametrize("method", ["objects", "geonodes"])
def test_keys_in_step_order_and_scrubbing(method):
    coll = _fresh(method)
    sc = bpy.context.scene
    rest = _visible(coll)
    assert len(rest) == len(MODEL.bricks)
    rest_of = {s: _visible(coll, {s}) for s in range(MODEL.n_steps())}

    info = anim.animate_build(bpy.context, coll, frames_per_step=FPS)
    parents = lego_scene.step_parents(coll)
    assert len(parents) == MODEL.n_steps() == len(info.step_frames)

    # Keyframes on every step parent, the first key's frame increasing with the step.
    firsts = []
    for p in parents:
        ad = p.animation_data
        cb = action_get_channelbag_for_slot(ad.action, ad.action_slot)
        curves = {(fc.data_path, fc.array_index): fc for fc in cb.fcurves}
        z = curves[("location", 2)]
        assert [kp.interpolation for kp in z.keyframe_points] == ["CUBIC", "CUBIC"]
        assert z.keyframe_points[0].easing == "EASE_OUT"
        assert z.keyframe_points[0].co[1] > z.keyframe_points[1].co[1]  # drops down
        for i in range(3):
            assert {kp.interpolation for kp in curves[("scale", i)].keyframe_points} == {"CONSTANT"}
        firsts.append(min(kp.co[0] for fc in cb.fcurves for kp in fc.keyframe_points))
    assert firsts == sorted(firsts) and len(set(firsts)) == len(firsts)

    # The frame range covers every step's drop.
    assert sc.frame_start <= info.step_frames[0][0]
    assert sc.frame_end >= info.step_frames[-1][1]

    # Scrub: at every frame exactly the started steps are visible; landed steps are at rest.
    n_steps = MODEL.n_steps()
    for f in range(sc.frame_start - 1, sc.frame_end + 1):
        sc.frame_set(f)
        s = anim.step_at_frame(f, info.frame_start, FPS, n_steps)
        shown = [st for st, m in _instances(coll) if abs(np.linalg.det(m[:3, :3])) > 1e-9]
        assert sorted(shown) == sorted(st for st in STEP_OF if st <= s), f
        landed = {k for k, (_a, land) in enumerate(info.step_frames) if land <= f}
        assert _visible(coll, landed) == sorted(p for k in landed for p in rest_of[k]), f
        if s >= 0 and s not in landed:  # the step in flight is above its rest
            z_now = [p[2] for p in _visible(coll, {s})]
            assert min(z_now) > min(p[2] for p in rest_of[s]), f
    sc.frame_set(sc.frame_end)
    assert _visible(coll) == rest


def test_drop_eases_out_from_above():
    coll = _fresh("objects")
    info = anim.animate_build(bpy.context, coll, frames_per_step=12, drop_height=0.1)
    sc = bpy.context.scene
    p = lego_scene.step_parents(coll)[1]
    first, land = info.step_frames[1]
    zs = []
    for f in range(first, land + 1):
        sc.frame_set(f)
        zs.append(p.evaluated_get(bpy.context.evaluated_depsgraph_get()).matrix_world[2][3])
    assert zs[0] == pytest.approx(0.1) and zs[-1] == pytest.approx(0.0, abs=1e-9)
    assert all(a > b for a, b in zip(zs, zs[1:], strict=False))  # always moving down
    steps = -np.diff(zs)
    assert steps[0] > steps[-1] * 3  # fast at first, slow landing: ease-out, no bounce
    assert min(zs) >= -1e-9  # never below its rest (no overshoot)


def test_camera_frames_model_and_clear_restores():
    coll = _fresh("geonodes")
    sc = bpy.context.scene
    user_cam = bpy.data.objects.new("User Cam", bpy.data.cameras.new("User Cam"))
    sc.collection.objects.link(user_cam)
    sc.camera = user_cam
    sc.frame_start, sc.frame_end = 5, 77
    rest = {p.name: (tuple(p.location), tuple(p.scale)) for p in lego_scene.step_parents(coll)}

    info = anim.animate_build(bpy.context, coll, frames_per_step=FPS)
    again = anim.animate_build(bpy.context, coll, frames_per_step=FPS)  # re-run replaces
    assert again.frame_end == info.frame_end
    cams = [o for o in coll.objects if o.type == "CAMERA"]
    assert len(cams) == 1 and sc.camera == cams[0]
    assert len([a for a in bpy.data.actions if a.get(anim.ACTION_KEY)]) == MODEL.n_steps()
    sc.frame_set(sc.frame_end)
    for _s, m in _instances(coll):  # every brick corner is inside the camera's view
        for c in ((-0.008, -0.004, 0), (0.008, 0.004, 0.0096)):
            v = world_to_camera_view(sc, sc.camera, Vector(m[:3, :3] @ np.array(c) + m[:3, 3]))
            assert 0 <= v.x <= 1 and 0 <= v.y <= 1 and v.z > 0

    assert anim.clear_animation(coll, sc) == MODEL.n_steps()
    assert sc.camera == user_cam
    assert (sc.frame_start, sc.frame_end) == (5, 77)
    assert not [a for a in bpy.data.actions if a.get(anim.ACTION_KEY)]
    assert not [o for o in coll.objects if o.type == "CAMERA"]
    assert not anim.has_animation(coll)
    for p in lego_scene.step_parents(coll):
        assert p.animation_data is None or p.animation_data.action is None
        assert (tuple(p.location), tuple(p.scale)) == rest[p.name]
        assert anim.REST_KEY not in p


def test_operators_and_poll(registered):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert not bpy.ops.image2lego.animate_build.poll()
    assert not bpy.ops.image2lego.clear_animation.poll()
    coll = lego_scene.build_model(bpy.context, MODEL, name="Anim", method="objects")
    assert bpy.ops.image2lego.animate_build(frames_per_step=4) == {"FINISHED"}
    assert anim.has_animation(coll)
    assert bpy.context.scene.frame_end >= 1 + 4 * (MODEL.n_steps() - 1) + 3
    assert bpy.ops.image2lego.clear_animation() == {"FINISHED"}
    assert not anim.has_animation(coll)


def test_bad_arguments():
    coll = _fresh("objects")
    with pytest.raises(ValueError, match="frames_per_step"):
        anim.animate_build(bpy.context, coll, frames_per_step=1)
    with pytest.raises(ValueError, match="drop_height"):
        anim.animate_build(bpy.context, coll, drop_height=-1)
    assert not anim.has_animation(coll)
    empty = bpy.data.collections.new("empty")
    with pytest.raises(ValueError, match="no build steps"):
        anim.animate_build(bpy.context, empty)


def test_instructions_render_the_model_at_rest_while_animated(tmp_path):
    from PIL import Image

    from image2lego.blender import instructions as ins

    coll = _fresh("objects")
    plain = ins.run(ins.render_steps(bpy.context, coll, tmp_path, (96, 72), thumbnails=False))
    anim.animate_build(bpy.context, coll, frames_per_step=FPS)
    bpy.context.scene.frame_set(0)  # nothing visible in the user's scene at this frame
    out = tmp_path / "animated"
    out.mkdir()
    moved = ins.run(ins.render_steps(bpy.context, coll, out, (96, 72), thumbnails=False))
    assert bpy.context.scene.frame_current == 0
    for a, b in zip(plain, moved, strict=True):
        assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))

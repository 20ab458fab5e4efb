"""Keyframed build animation: each step's bricks drop into place, in build order.

Keys go on the step parents of :mod:`.scene` (an empty with brick children for the
``"objects"`` method, the instancer object for ``"geonodes"``), so both methods animate the
same way and a 20,000-brick model needs only a few keys per step:

* ``location.z``: from ``drop_height`` above its rest height down to rest, with cubic
  ease-out interpolation — fast at first, slowing to a gentle stop, no bounce: a hand placing
  a brick;
* ``scale``: 0 before the step starts and 1 from its first frame (constant interpolation), so
  a step is invisible until its turn — a zero-scale parent collapses all its bricks/instances.

Step ``s`` starts at ``frame_start + s * frames_per_step`` and lands ``drop_frames`` later; the
scene frame range covers every step plus a short hold on the finished model. Scrubbing to any
frame shows exactly the steps that have started. A camera framing the whole model (the same
framing as the instruction renders) is added to the model collection and made the scene
camera. :func:`clear_animation` undoes all of it, restoring rest transforms, the previous scene
camera and frame range.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import bpy

from . import scene as lego_scene
from .instructions import model_bounds, place_camera

#: Tags on what the animation creates or changes.
ACTION_KEY = "i2l_build_action"
CAMERA_KEY = "i2l_build_camera"
REST_KEY = "i2l_rest"  # on step parents: JSON {"location": [...], "scale": [...]}
SAVED_KEY = "i2l_anim_saved"  # on the collection: JSON of the scene state it replaced

#: Default drop height: this many times the model's height, at least 5 bricks (48 mm).
DROP_FACTOR = 1.0
MIN_DROP_M = 0.048


@dataclass
class BuildAnimation:
    frame_start: int
    frame_end: int
    frames_per_step: int
    drop_frames: int
    drop_height: float
    step_frames: list[tuple[int, int]]  # (first frame, landing frame) per step
    camera: bpy.types.Object | None


def step_at_frame(
    frame: int, frame_start: int, frames_per_step: int, n_steps: int | None = None
) -> int:
    """Index of the last step that has started at ``frame`` (-1 before the first); clamped to
    the last step when ``n_steps`` is given."""
    if frame < frame_start:
        return -1
    s = (int(frame) - int(frame_start)) // int(frames_per_step)
    return s if n_steps is None else min(s, int(n_steps) - 1)


def _fcurves(ob):
    """The F-curves of ``ob``'s action: its slot's channel bag (layered actions, Blender 4.4+;
    ``Action.fcurves`` is gone in 5.0) or the legacy ``Action.fcurves`` (4.2, 4.3)."""
    from bpy_extras import anim_utils

    ad = ob.animation_data
    get_bag = getattr(anim_utils, "action_get_channelbag_for_slot", None)
    if get_bag is not None and getattr(ad, "action_slot", None) is not None:
        bag = get_bag(ad.action, ad.action_slot)
        if bag is not None:
            return bag.fcurves
    return ad.action.fcurves


def _set_interpolation(ob, data_path: str, interpolation: str, easing: str = "AUTO") -> None:
    for fc in _fcurves(ob):
        if fc.data_path == data_path:
            for kp in fc.keyframe_points:
                kp.interpolation = interpolation
                kp.easing = easing
            fc.extrapolation = "CONSTANT"
            fc.update()


def _rest(ob) -> tuple[tuple[float, ...], tuple[float, ...]]:
    data = ob.get(REST_KEY)
    if data:
        d = json.loads(data)
        return tuple(d["location"]), tuple(d["scale"])
    return tuple(ob.location), tuple(ob.scale)


def animate_build(
    context,
    collection,
    frames_per_step: int = 12,
    drop_height: float | None = None,
    *,
    frame_start: int = 1,
    hold_frames: int | None = None,
    camera: bool = True,
) -> BuildAnimation:
    """Key the build of ``collection`` step by step; see the module docstring.

    ``drop_height`` is in metres (default: the model's height, at least 48 mm). Re-running
    replaces the previous build animation.
    """
    if int(frames_per_step) < 2:
        raise ValueError(f"frames_per_step must be at least 2, got {frames_per_step}")
    if drop_height is not None and not drop_height > 0:
        raise ValueError(f"drop_height must be positive (metres), got {drop_height}")
    if frame_start < 0:
        raise ValueError(f"frame_start must be ≥ 0, got {frame_start}")
    scene = context.scene
    parents = lego_scene.step_parents(collection)
    if not parents:
        raise ValueError(f"collection {collection.name!r} has no build steps to animate")
    clear_animation(collection, scene)

    fps = int(frames_per_step)
    drop_frames = max(1, round(fps * 0.75))
    hold = fps * 2 if hold_frames is None else int(hold_frames)

    dg = context.evaluated_depsgraph_get()
    dg.update()
    bmin, bmax = model_bounds(collection, dg)
    if drop_height is None:
        drop_height = max(MIN_DROP_M, DROP_FACTOR * float(bmax[2] - bmin[2]))

    saved = {
        "frame_start": scene.frame_start,
        "frame_end": scene.frame_end,
        "camera": scene.camera.name if scene.camera is not None else None,
    }
    collection[SAVED_KEY] = json.dumps(saved)  # so a failure below can be undone
    try:
        step_frames = []
        for p in parents:
            s = int(p[lego_scene.STEP_KEY])
            loc, scale = _rest(p)
            p[REST_KEY] = json.dumps({"location": list(loc), "scale": list(scale)})
            first = frame_start + s * fps
            land = first + drop_frames
            step_frames.append((first, land))

            p.location = loc
            p.location.z = loc[2] + drop_height
            p.keyframe_insert("location", index=2, frame=first)
            p.location.z = loc[2]
            p.keyframe_insert("location", index=2, frame=land)
            p.scale = (0.0, 0.0, 0.0)
            p.keyframe_insert("scale", frame=first - 1)
            p.scale = scale
            p.keyframe_insert("scale", frame=first)
            act = p.animation_data.action
            act[ACTION_KEY] = True
            act.name = f"{p.name} build"
            _set_interpolation(p, "location", "CUBIC", "EASE_OUT")
            _set_interpolation(p, "scale", "CONSTANT")

        n = len(parents)
        end = frame_start + (n - 1) * fps + drop_frames + hold
        scene.frame_start = frame_start
        scene.frame_end = end

        cam_ob = None
        if camera:
            cam = bpy.data.cameras.new(f"{collection.name} Camera")
            cam_ob = bpy.data.objects.new(f"{collection.name} Camera", cam)
            cam_ob[CAMERA_KEY] = True
            cam[CAMERA_KEY] = True
            lego_scene.mark_owned(cam_ob)
            collection.objects.link(cam_ob)
            r = scene.render
            aspect = (r.resolution_x * r.pixel_aspect_x) / max(1, r.resolution_y * r.pixel_aspect_y)
            place_camera(cam_ob, bmin, bmax, aspect)
            scene.camera = cam_ob
    except BaseException:  # never leave half-written keys: back to the state before
        clear_animation(collection, scene)
        raise
    collection[SAVED_KEY] = json.dumps(saved)
    scene.frame_set(end)
    return BuildAnimation(
        frame_start=frame_start,
        frame_end=end,
        frames_per_step=fps,
        drop_frames=drop_frames,
        drop_height=float(drop_height),
        step_frames=step_frames,
        camera=cam_ob,
    )


def has_animation(collection) -> bool:
    return any(
        p.animation_data is not None
        and p.animation_data.action is not None
        and p.animation_data.action.get(ACTION_KEY)
        for p in lego_scene.step_parents(collection)
    )


def clear_animation(collection, scene=None) -> int:
    """Remove the build animation of ``collection``; return how many step parents it cleared.

    Step parents go back to their rest transform; the camera it added is deleted; the scene
    camera and frame range it replaced are restored (``scene`` defaults to the context scene).
    Keys the user added on other objects are left alone.
    """
    scene = scene or bpy.context.scene
    cleared = 0
    for p in lego_scene.step_parents(collection):
        ad = p.animation_data
        act = ad.action if ad is not None else None
        if act is not None and act.get(ACTION_KEY):
            ad.action = None
            if act.users == 0:
                bpy.data.actions.remove(act)
            cleared += 1
        if REST_KEY in p:
            loc, scale = _rest(p)
            p.location = loc
            p.scale = scale
            del p[REST_KEY]
    cams = [o for o in collection.objects if o.get(CAMERA_KEY)]
    for o in cams:
        data = o.data
        bpy.data.objects.remove(o)
        if data is not None and data.users == 0:
            bpy.data.cameras.remove(data)
    saved = collection.get(SAVED_KEY)
    if saved:
        d = json.loads(saved)
        scene.frame_start = d["frame_start"]
        scene.frame_end = d["frame_end"]
        cam = bpy.data.objects.get(d["camera"]) if d.get("camera") else None
        if cam is not None and scene.camera is None:
            scene.camera = cam
        del collection[SAVED_KEY]
    return cleared

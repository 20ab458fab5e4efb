"""Run inside one bpy version (by benchmarks/blender_compat.py): install the zip from disk into
a fresh user folder, enable it, run Image → LEGO and Brickify Selected, then what else a user
meets (every panel and menu drawn and checked, Render Instructions, LDraw and parts-list
export / import, Mosaic, Caption, Face → LEGO's availability, Update and Remove Model),
disable; print JSON."""

import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import _ui_check  # beside this script
import bpy

ZIP, IMAGE, OBJ = sys.argv[1:4]
TMP = Path(tempfile.mkdtemp(prefix="out-", dir=Path.cwd()))  # the caller removes its cwd
MODULE = "bl_ext.user_default.image2lego"
out = {"blender": bpy.app.version_string, "python": sys.version.split()[0]}


def step(name, fn):
    t = time.perf_counter()
    try:
        out[name] = fn()
    except Exception as exc:  # noqa: BLE001
        out[name] = f"FAIL {type(exc).__name__}: {exc}"
        out.setdefault("tracebacks", {})[name] = traceback.format_exc()[-1500:]
    out.setdefault("seconds", {})[name] = round(time.perf_counter() - t, 2)


def install():
    res = bpy.ops.extensions.package_install_files(
        filepath=ZIP, repo="user_default", enable_on_install=True, overwrite=True
    )
    assert MODULE in bpy.context.preferences.addons, "not enabled after install"
    n = len(dir(bpy.ops.image2lego))
    return f"OK ({sorted(res)[0]}, {n} operators)"


def image_to_lego():
    s = bpy.context.scene.image2lego
    s.image_path = IMAGE
    s.resolution = "32" if hasattr(s, "resolution") else s.resolution
    res = bpy.ops.image2lego.image_to_lego()
    assert res == {"FINISHED"}, res
    from importlib import import_module

    scene = import_module(MODULE + ".blender.scene")
    coll = scene.find_model_collection(bpy.context)
    return f"OK ({len(scene.model_from_collection(coll))} bricks)"


def brickify():
    if not hasattr(bpy.ops.image2lego, "brickify_selected") or "brickify_selected" not in dir(
        bpy.ops.image2lego
    ):
        return "n/a (no operator)"
    bpy.ops.object.select_all(action="DESELECT")
    if OBJ.endswith((".glb", ".gltf")):
        bpy.ops.import_scene.gltf(filepath=OBJ)
    elif hasattr(bpy.ops.wm, "obj_import"):
        bpy.ops.wm.obj_import(filepath=OBJ)
    meshes = [o for o in bpy.context.selected_objects if o.type == "MESH"]
    assert meshes, "the test mesh did not import"
    bpy.context.view_layer.objects.active = meshes[0]
    res = bpy.ops.image2lego.brickify_selected()
    assert res == {"FINISHED"}, res
    from importlib import import_module

    scene = import_module(MODULE + ".blender.scene")
    coll = scene.find_model_collection(bpy.context)
    model = scene.model_from_collection(coll)
    colors = len({b.color for b in model.bricks})
    return f"OK ({len(model)} bricks, {colors} colours)"


def animate():
    """Animate Build, Clear Animation (the frame range comes back), Highlight Stress on / off."""
    if "animate_build" not in dir(bpy.ops.image2lego):
        return "n/a"
    sc = bpy.context.scene
    frames = sc.frame_start, sc.frame_end
    res = bpy.ops.image2lego.animate_build()
    assert res == {"FINISHED"}, res
    assert (sc.frame_start, sc.frame_end) != frames, "no frames keyed"
    res = bpy.ops.image2lego.clear_animation()
    assert res == {"FINISHED"} and (sc.frame_start, sc.frame_end) == frames, res
    for _ in range(2):
        res = bpy.ops.image2lego.highlight_stress()
        assert res == {"FINISHED"}, ("highlight stress", res)
    return "OK (+ clear, stress on/off)"


def _module(name):
    from importlib import import_module

    return import_module(f"{MODULE}.{name}")


def _fresh_file():
    """An empty file; the preferences (the enabled extension) stay (read_factory_settings
    would reset them)."""
    bpy.ops.wm.read_homefile(use_empty=True)


def ui():
    """Every panel, menu entry and the preferences drawn with models, warnings and stats, then
    in an empty file; every name checked against this Blender's RNA (_ui_check.py)."""
    reps = [_ui_check.draw_all()]
    _fresh_file()
    reps.append(_ui_check.draw_all())
    problems = [p for r in reps for p in r.problems]
    if problems:
        raise AssertionError("; ".join(problems[:3]))
    long = sum(len(r.long_labels) for r in reps)
    long = f", {long} cut labels" if long else ""
    return f"OK ({reps[0].n_panels} panels, {reps[0].n_menus} menu entries{long})"


def instructions():
    out = TMP / "booklet"
    res = bpy.ops.image2lego.render_instructions(directory=str(out), width=160, height=120)
    assert res == {"FINISHED"}, res
    pngs = list((out / "instructions_images").glob("step_*.png"))
    assert (out / "instructions.pdf").stat().st_size > 0 and pngs
    return f"OK ({len(pngs)} steps)"


def ldraw_io():
    scene = _module("blender.scene")
    model = scene.model_from_collection(scene.find_model_collection(bpy.context))
    for ext in ("ldr", "mpd"):
        res = bpy.ops.image2lego.export_ldraw(filepath=str(TMP / f"m.{ext}"))
        assert res == {"FINISHED"}, res
    res = bpy.ops.image2lego.export_parts(filepath=str(TMP / "p.csv"), format="bricklink")
    assert res == {"FINISHED"} and (TMP / "p.xml").is_file(), res
    res = bpy.ops.image2lego.import_ldraw(filepath=str(TMP / "m.mpd"))
    assert res == {"FINISHED"}, res
    back = scene.model_from_collection(scene.find_model_collection(bpy.context, "m"))
    assert sorted(back.bricks) == sorted(model.bricks), "the .mpd did not round-trip"
    return f"OK ({len(back)} bricks round-trip)"


def more_builds():
    scene = _module("blender.scene")
    got = []
    s = bpy.context.scene.image2lego
    s.image_path = IMAGE
    res = bpy.ops.image2lego.preview_input()
    assert res == {"FINISHED"} and bpy.data.images.get("I2L Mask Preview") is not None, res
    import numpy as np

    grid = np.zeros((6, 5, 4), dtype=bool)
    grid[:, :3, 0] = grid[:3, :, 1:] = True
    np.save(TMP / "grid.npy", grid)
    s.model_name = "Voxels"
    res = bpy.ops.image2lego.voxels_to_lego(filepath=str(TMP / "grid.npy"))
    assert res == {"FINISHED"}, ("voxels", res)
    coll = scene.find_model_collection(bpy.context, "Voxels")
    got.append(f"preview, voxels {len(scene.model_from_collection(coll))}")
    res = bpy.ops.image2lego.mosaic(width=16, height=16, colors=4)
    assert res == {"FINISHED"}, ("mosaic", res)
    got.append(
        f"mosaic {len(scene.model_from_collection(scene.find_model_collection(bpy.context)))}"
    )
    s.model_name = "Caption"
    res = bpy.ops.image2lego.caption_to_lego(text="a small red sofa")
    assert res == {"FINISHED"}, ("caption", res)
    coll = scene.find_model_collection(bpy.context, "Caption")
    line = _module("panels.face").caption_reader_line()  # what the panel says
    reader = "embedding" if "sentence embedding" in line else "word table"
    got.append(f"caption {len(scene.model_from_collection(coll))} ({reader})")
    if _module("core.face").mediapipe_unavailable_reason() is None:
        from PIL import Image  # from the zip's wheels, as scikit-image's astronaut photo
        from skimage import data

        Image.fromarray(data.astronaut()).save(TMP / "astronaut.png")
        s.image_path, s.model_name = str(TMP / "astronaut.png"), "Face"
        res = bpy.ops.image2lego.face_to_lego(size=16, colors=4)
        assert res == {"FINISHED"}, ("face", res)
        coll = scene.find_model_collection(bpy.context, "Face")
        got.append(f"face {len(scene.model_from_collection(coll))}")
    else:
        assert not bpy.ops.image2lego.face_to_lego.poll(), "Face → LEGO offered without mediapipe"
        got.append("face n/a")
    return "OK (" + ", ".join(got) + ")"


def esc_child():
    """Image → LEGO at 64³ as the UI runs it (a child process of this Blender's Python with the
    zip's wheels, blender/subproc.py), ESC after its first 4 s: how fast it stops."""
    jobs, background = _module("blender.jobs"), _module("blender.background")
    s = bpy.context.scene.image2lego
    s.image_path, s.model_name = IMAGE, "Child"
    # a whole run in a child (forced at 16³): the same bricks as in this process
    progress = _module("lego.progress")
    s.resolution = "16"
    here = progress.run(jobs.image_steps(bpy.context)[0]).model
    os.environ["IMAGE2LEGO_CHILD"] = "always"
    try:
        steps, _ = jobs.image_steps(bpy.context, child=True)
        there = progress.run(jobs.prepare_steps(steps, None, "Child")).result.model
    finally:
        del os.environ["IMAGE2LEGO_CHILD"]
    assert steps.in_child is True and there.bricks == here.bricks, "the child's model differs"
    items = [i[0] for i in _module("blender.properties").resolution_items(s, bpy.context)]
    if "64" not in items:
        return f"OK (16³ in a child: the same {len(there)} bricks; no 64³ level)"
    s.resolution = "64"
    try:
        steps, out_dir = jobs.image_steps(bpy.context, child=True)
    finally:
        s.resolution = "32"
    assert hasattr(steps, "kill"), "64³ did not go to a child process"
    job = background.StepJob(jobs.prepare_steps(steps, None, "Child"))
    job.on_cancel = steps.kill
    job.start()
    time.sleep(4.0)
    where = job.progress.message if job.progress is not None else "starting"
    t = time.perf_counter()
    job.cancel()
    assert job.wait(5.0), "the job did not stop"
    ms = (time.perf_counter() - t) * 1000
    assert steps.in_child is True and steps._proc.poll() is not None, "not run in a child"
    where = where.split(" at ")[0].lower()
    return f"OK (16³ same {len(there)} bricks; 64³ ESC: stopped in {ms:.0f} ms, {where})"


def _counts():
    """Datablocks a model makes (the world and the two lights a first build adds to a bare
    scene are the scene's, and stay)."""
    out = {k: len(getattr(bpy.data, k)) for k in ("meshes", "node_groups", "collections")}
    out["objects"] = sum(o.type != "LIGHT" for o in bpy.data.objects)
    return out


def update_remove():
    scene = _module("blender.scene")
    _fresh_file()
    s = bpy.context.scene.image2lego
    s.image_path, s.resolution, s.model_name = IMAGE, "16", "Chair"
    empty = _counts()
    assert bpy.ops.image2lego.image_to_lego() == {"FINISHED"}
    coll = scene.find_model_collection(bpy.context, "Chair")
    coll.image2lego.resolution = "32"  # the Active Model panel's "Built with" settings
    res = bpy.ops.image2lego.update_model()
    assert res == {"FINISHED"}, ("update", res)
    coll = scene.find_model_collection(bpy.context, "Chair")
    n = len(scene.model_from_collection(coll))
    res = bpy.ops.image2lego.remove_model()
    assert res == {"FINISHED"}, ("remove", res)
    left = {k: v - empty[k] for k, v in _counts().items() if v != empty[k]}
    assert not left and not scene.model_collections(bpy.context), f"left behind: {left}"
    return f"OK (16³ → 32³: {n} bricks; removed, nothing left)"


def disable():
    bpy.ops.preferences.addon_disable(module=MODULE)
    left = hasattr(bpy.types.Scene, "image2lego")
    assert not left, "Scene.image2lego left behind"
    return "OK"


step("install_enable", install)
if str(out["install_enable"]).startswith("OK"):
    bpy.context.scene.image2lego.output_dir = str(TMP / "out")
    step("image_to_lego", image_to_lego)
    step("brickify_selected", brickify)
    step("animate_build", animate)
    step("instructions", instructions)
    step("ldraw_io", ldraw_io)
    step("more_builds", more_builds)
    step("ui", ui)  # with models, warnings and stats in the panels
    step("esc_child", esc_child)
    step("update_remove", update_remove)
    step("disable", disable)
    out["files"] = sorted(os.listdir(TMP / "out")) if (TMP / "out").is_dir() else []
print("RESULT " + json.dumps(out))

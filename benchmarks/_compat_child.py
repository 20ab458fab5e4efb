"""Run inside one bpy version (by benchmarks/blender_compat.py): install the zip from disk into
a fresh user folder, enable it, run Image → LEGO and Brickify Selected, disable; print JSON."""

import json
import sys
import time
import traceback

import bpy

ZIP, IMAGE, OBJ = sys.argv[1:4]
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
    if "animate_build" not in dir(bpy.ops.image2lego):
        return "n/a"
    res = bpy.ops.image2lego.animate_build()
    assert res == {"FINISHED"}, res
    return "OK"


def disable():
    bpy.ops.preferences.addon_disable(module=MODULE)
    left = hasattr(bpy.types.Scene, "image2lego")
    assert not left, "Scene.image2lego left behind"
    return "OK"


step("install_enable", install)
if str(out["install_enable"]).startswith("OK"):
    step("image_to_lego", image_to_lego)
    step("brickify_selected", brickify)
    step("animate_build", animate)
    step("disable", disable)
print("RESULT " + json.dumps(out))

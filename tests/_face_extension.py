"""Run in a fresh process of a *bare* bpy venv (bpy + numpy only; BLENDER_USER_RESOURCES set to
a temporary folder): installs the built extension zip, enables it, and runs Face → LEGO on
scikit-image's astronaut photo (written beside the zip by the caller), so mediapipe and every
other dependency come from the zip's wheels. Prints one JSON line; exits non-zero on failure.

    python tests/_face_extension.py ZIP PHOTO OUT_DIR
"""

import json
import sys
import time

import bpy
from _bpy_install import MODULE, install  # tests/ is this script's folder

ZIP, PHOTO, OUT = sys.argv[1:4]
out = install(ZIP)
face = sys.modules[f"{MODULE}.core.face"] if f"{MODULE}.core.face" in sys.modules else None
if face is None:
    import importlib

    face = importlib.import_module(f"{MODULE}.core.face")
out["reason"] = face.mediapipe_unavailable_reason()
out["backend"] = face.face_backend()
s = bpy.context.scene.image2lego
s.image_path = PHOTO
s.output_dir = OUT
s.model_name = "Astronaut"
out["poll"] = bool(bpy.ops.image2lego.face_to_lego.poll())
out["description"] = bpy.ops.image2lego.face_to_lego.get_rna_type().description
if out["poll"]:
    t = time.perf_counter()
    out["run"] = sorted(bpy.ops.image2lego.face_to_lego(size=16, colors=4))
    out["run_s"] = round(time.perf_counter() - t, 1)
    mp = sys.modules.get("mediapipe.python.solutions.face_mesh") or sys.modules.get(
        "mediapipe.tasks.python.vision.face_landmarker"
    )
    out["mediapipe_file"] = getattr(mp, "__file__", None)
    pb = sys.modules.get("google.protobuf")
    out["protobuf_file"] = getattr(pb, "__file__", None)
    out["model_file"] = str(face.face_task_path())
    scene = sys.modules[f"{MODULE}.blender.scene"]
    coll = scene.find_model_collection(bpy.context)
    model = scene.model_from_collection(coll)
    out["bricks"] = len(model.bricks)
    out["colors"] = sorted({b.color for b in model.bricks})
    out["stats"] = {k: scene.get_stats(coll).get(k) for k in ("components", "stable")}
    out["source"] = scene.get_source(coll).get("kind")
print("RESULT " + json.dumps(out))

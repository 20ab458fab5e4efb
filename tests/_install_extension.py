"""Run in a fresh process (the test sets BLENDER_USER_RESOURCES to a temporary folder).

Installs the built extension zip into real Blender (bpy), enables it, checks what it
registered, disables it, then cycles enable/disable 20 times checking nothing is left behind.
Prints one JSON line with the findings; exits non-zero on failure.
"""

import json
import sys

import bpy

ZIP = sys.argv[1]
REPO = "user_default"
MODULE = f"bl_ext.{REPO}.image2lego"


def ours(cls) -> bool:
    return getattr(cls, "__module__", "").startswith(MODULE)


def registered() -> dict:
    panels = [
        c.bl_idname if hasattr(c, "bl_idname") else c.__name__
        for c in bpy.types.Panel.__subclasses__()
        if ours(c) and getattr(c, "bl_category", "") == "LEGO"
    ]
    ops = sorted(dir(bpy.ops.image2lego))
    return {
        "enabled": MODULE in bpy.context.preferences.addons,
        "panels": sorted(panels),
        "operators": ops,
        "scene_prop": hasattr(bpy.types.Scene, "image2lego"),
        "n_classes": sum(
            ours(c)
            for base in (
                bpy.types.Panel,
                bpy.types.Operator,
                bpy.types.PropertyGroup,
                bpy.types.AddonPreferences,
            )
            for c in base.__subclasses__()
            if getattr(c, "is_registered", False)
        ),
    }


out = {}
res = bpy.ops.extensions.package_install_files(
    filepath=ZIP, repo=REPO, enable_on_install=True, overwrite=True
)
out["install"] = sorted(res)
out["after_install"] = registered()
bpy.ops.preferences.addon_disable(module=MODULE)
out["after_disable"] = registered()
cycles = []
for _ in range(20):
    bpy.ops.preferences.addon_enable(module=MODULE)
    on = registered()
    bpy.ops.preferences.addon_disable(module=MODULE)
    off = registered()
    cycles.append((on["n_classes"], len(on["operators"]), off["n_classes"], off["scene_prop"]))
out["cycles"] = cycles

# All-or-nothing: make the 5th of our classes fail to register; enabling must fail and leave
# nothing registered, and a later enable (the failure gone) must work.
real = bpy.utils.register_class
calls = {"n": 0}


def failing(cls):
    if ours(cls):
        calls["n"] += 1
        if calls["n"] == 5:
            raise ValueError("injected failure")
    return real(cls)


bpy.utils.register_class = failing
try:
    bpy.ops.preferences.addon_enable(module=MODULE)
except Exception as exc:  # Blender may raise or just report
    out["failed_enable_error"] = str(exc)
finally:
    bpy.utils.register_class = real
out["after_failed_enable"] = registered()
bpy.ops.preferences.addon_enable(module=MODULE)
out["after_reenable"] = registered()
bpy.ops.preferences.addon_disable(module=MODULE)
print("RESULT " + json.dumps(out))

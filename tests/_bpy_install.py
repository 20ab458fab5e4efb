"""Shared by the bare-bpy child scripts (tests/_face_extension.py, tests/_caption_extension.py):
install an extension zip from disk into Blender's user repository and enable it."""

from __future__ import annotations

import sys
import time

import bpy

REPO = "user_default"
MODULE = f"bl_ext.{REPO}.image2lego"


def install(zip_path: str) -> dict:
    """Install and enable ``zip_path``; the child's result dict so far."""
    out: dict = {"python": list(sys.version_info[:2]), "blender": list(bpy.app.version)}
    t = time.perf_counter()
    out["install"] = sorted(
        bpy.ops.extensions.package_install_files(
            filepath=zip_path, repo=REPO, enable_on_install=True, overwrite=True
        )
    )
    out["install_s"] = round(time.perf_counter() - t, 1)
    out["enabled"] = MODULE in bpy.context.preferences.addons
    return out

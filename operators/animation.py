"""Operators: keyframe the build animation of the current model, and remove it."""

from __future__ import annotations

import bpy
from bpy.props import FloatProperty, IntProperty, StringProperty

from ..blender import animation as lego_animation
from ..blender import scene as lego_scene
from .build import poll_model


class IMAGE2LEGO_OT_animate_build(bpy.types.Operator):
    """Keyframe the model so each build step drops into place in order"""

    bl_idname = "image2lego.animate_build"
    bl_label = "Animate Build"
    bl_options = {"REGISTER", "UNDO"}

    collection: StringProperty(name="Model", description="Model name (empty: current model)")
    frames_per_step: IntProperty(name="Frames per Step", default=12, min=2, max=1000)
    drop_height: FloatProperty(
        name="Drop Height", description="0 = the model's height", default=0.0, min=0.0,
        subtype="DISTANCE", unit="LENGTH",
    )  # fmt: skip

    @classmethod
    def poll(cls, context):
        return poll_model(cls, context)

    def execute(self, context):
        coll = lego_scene.find_model_collection(context, self.collection or None)
        if coll is None:
            self.report({"ERROR"}, f"No LEGO model named {self.collection!r}")
            return {"CANCELLED"}
        try:
            info = lego_animation.animate_build(
                context, coll, self.frames_per_step, self.drop_height or None
            )
        except ValueError as e:
            self.report({"ERROR"}, f"Animate Build failed: {e}")
            return {"CANCELLED"}
        n = len(info.step_frames)
        self.report({"INFO"}, f"Animated {n} steps, frames {info.frame_start}–{info.frame_end}")
        return {"FINISHED"}


class IMAGE2LEGO_OT_clear_animation(bpy.types.Operator):
    """Remove the build animation and its camera; restore the scene's frame range and camera"""

    bl_idname = "image2lego.clear_animation"
    bl_label = "Clear Animation"
    bl_options = {"REGISTER", "UNDO"}

    collection: StringProperty(name="Model", description="Model name (empty: current model)")

    @classmethod
    def poll(cls, context):
        return poll_model(cls, context)

    def execute(self, context):
        coll = lego_scene.find_model_collection(context, self.collection or None)
        if coll is None:
            self.report({"ERROR"}, f"No LEGO model named {self.collection!r}")
            return {"CANCELLED"}
        n = lego_animation.clear_animation(coll, context.scene)
        self.report({"INFO"}, f"Cleared the build animation of {n} steps")
        return {"FINISHED"}


classes = (IMAGE2LEGO_OT_animate_build, IMAGE2LEGO_OT_clear_animation)

"""Operator: render the instruction booklet of the current model (modal, ESC cancels)."""

from __future__ import annotations

import bpy
from bpy.props import IntProperty, StringProperty

from ..blender import instructions as lego_instructions
from ..blender import jobs
from ..blender import scene as lego_scene
from .build import poll_model


def _output_dir(op, context) -> str:
    path = op.directory or getattr(getattr(context.scene, "image2lego", None), "output_dir", "")
    if not path:
        raise ValueError("Set an output folder first (Output section of the LEGO panel)")
    return bpy.path.abspath(path)


class IMAGE2LEGO_OT_render_instructions(bpy.types.Operator):
    """Render one Workbench image per build step and write instructions.html and .pdf"""

    bl_idname = "image2lego.render_instructions"
    bl_label = "Render Instructions"
    bl_options = {"REGISTER"}

    directory: StringProperty(name="Folder", subtype="DIR_PATH", default="")
    collection: StringProperty(name="Model", description="Model name (empty: current model)")
    width: IntProperty(name="Width", default=800, min=64, max=4096)
    height: IntProperty(name="Height", default=600, min=64, max=4096)

    @classmethod
    def poll(cls, context):
        return poll_model(cls, context)

    def _start(self, context):
        try:
            import PIL  # noqa: F401  - the booklet and the compositing use Pillow
        except ImportError:
            raise ValueError(
                "Render Instructions needs the Pillow package in Blender's Python"
            ) from None
        coll = lego_scene.find_model_collection(context, self.collection or None)
        if coll is None:
            raise ValueError(f"No LEGO model named {self.collection!r}")
        # the CLI's limits (steps, bricks), before any render or folder is made
        jobs.check_instructions_limits(lego_scene.model_from_collection(coll))
        out = lego_instructions.check_output_dir(_output_dir(self, context))
        return lego_instructions.render_instructions(
            context, coll, out, resolution=(self.width, self.height)
        )

    def _done(self, result) -> None:
        t = result.timings
        self.report(
            {"INFO"},
            f"Instructions: {t['steps']} steps written to {result.html.parent} "
            f"({t['render_s_per_step']:.2f} s per step)",
        )

    def execute(self, context):
        try:
            result = lego_instructions.run(self._start(context))
        except (ValueError, OSError, RuntimeError) as e:
            self.report({"ERROR"}, f"Render Instructions failed: {e}")
            return {"CANCELLED"}
        self._done(result)
        return {"FINISHED"}

    def invoke(self, context, event):
        if context.window is None:
            return self.execute(context)
        try:
            self._gen = self._start(context)
        except (ValueError, OSError, RuntimeError) as e:
            self.report({"ERROR"}, f"Render Instructions failed: {e}")
            return {"CANCELLED"}
        wm = context.window_manager
        wm.progress_begin(0, 100)
        self._timer = wm.event_timer_add(0.05, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def _finish(self, context) -> None:
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        context.workspace.status_text_set(None)

    def modal(self, context, event):
        if event.type == "ESC":
            self._gen.close()  # the generator's finally blocks restore scene and disk
            self._finish(context)
            self.report({"WARNING"}, "Render Instructions cancelled")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        try:
            p = next(self._gen)
        except StopIteration as stop:
            self._finish(context)
            self._done(stop.value)
            return {"FINISHED"}
        except (ValueError, OSError, RuntimeError) as e:
            self._finish(context)
            self.report({"ERROR"}, f"Render Instructions failed: {e}")
            return {"CANCELLED"}
        context.window_manager.progress_update(100 * p.fraction)
        context.workspace.status_text_set(f"LEGO instructions: {p.message} (ESC to cancel)")
        return {"RUNNING_MODAL"}


classes = (IMAGE2LEGO_OT_render_instructions,)

"""Build operators: Image → LEGO (modal, cancellable), Voxels → LEGO, input preview and the
stress highlight toggle. The work lives in :mod:`..blender.jobs`."""

from __future__ import annotations

import bpy
from bpy.props import StringProperty
from bpy_extras.io_utils import ImportHelper

from ..blender import jobs
from ..blender import scene as lego_scene


def _run_steps(op, context, steps, out_dir, name=None):
    """Drive a step generator to the end synchronously, with status-bar progress."""
    wm = context.window_manager
    wm.progress_begin(0, 100)
    try:
        while True:
            try:
                p = next(steps)
            except StopIteration as stop:
                result = stop.value
                break
            wm.progress_update(int(p.fraction * 100))
        coll = jobs.finish(context, result, name=name, out_dir=out_dir)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a clear report
        op.report({"ERROR"}, _message(exc))
        return {"CANCELLED"}
    finally:
        wm.progress_end()
    op.report({"INFO"}, f"{coll.name}: {len(lego_scene.model_from_collection(coll))} bricks")
    return {"FINISHED"}


def _message(exc: BaseException) -> str:
    if isinstance(exc, (jobs.JobError, ValueError, FileNotFoundError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class IMAGE2LEGO_OT_image_to_lego(bpy.types.Operator):
    """Turn the input image into a LEGO model (ESC cancels)"""

    bl_idname = "image2lego.image_to_lego"
    bl_label = "Image → LEGO"
    bl_options = {"REGISTER", "UNDO"}

    _timer = None
    _steps = None
    _out_dir = None

    @classmethod
    def poll(cls, context):
        s = getattr(context.scene, "image2lego", None)
        return s is not None and bool(s.image_path)

    def _start(self, context):
        try:
            return jobs.image_steps(context)
        except Exception as exc:  # noqa: BLE001
            self.report({"ERROR"}, _message(exc))
            return None

    def execute(self, context):
        started = self._start(context)
        if started is None:
            return {"CANCELLED"}
        return _run_steps(self, context, *started)

    def invoke(self, context, event):
        if context.window is None:
            return self.execute(context)
        started = self._start(context)
        if started is None:
            return {"CANCELLED"}
        self._steps, self._out_dir = started
        wm = context.window_manager
        wm.progress_begin(0, 100)
        self._timer = wm.event_timer_add(0.05, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def _stop(self, context):
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)

    def modal(self, context, event):
        if event.type == "ESC":
            self._steps.close()
            self._stop(context)
            self.report({"WARNING"}, "Image → LEGO cancelled; nothing changed")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        try:
            p = next(self._steps)
        except StopIteration as stop:
            try:
                coll = jobs.finish(context, stop.value, out_dir=self._out_dir)
            except Exception as exc:  # noqa: BLE001
                self._stop(context)
                self.report({"ERROR"}, _message(exc))
                return {"CANCELLED"}
            self._stop(context)
            self.report({"INFO"}, f"{coll.name}: built")
            return {"FINISHED"}
        except Exception as exc:  # noqa: BLE001
            self._stop(context)
            self.report({"ERROR"}, _message(exc))
            return {"CANCELLED"}
        context.window_manager.progress_update(int(p.fraction * 100))
        if context.workspace is not None:
            context.workspace.status_text_set(f"Image → LEGO: {p.message} (ESC cancels)")
        return {"RUNNING_MODAL"}


class IMAGE2LEGO_OT_voxels_to_lego(bpy.types.Operator, ImportHelper):
    """Build a LEGO model from a voxel grid (.npy/.npz bool array [x, y, z], Z up)"""

    bl_idname = "image2lego.voxels_to_lego"
    bl_label = "Voxels → LEGO"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".npy"
    filter_glob: StringProperty(default="*.npy;*.npz", options={"HIDDEN"})

    def execute(self, context):
        try:
            steps, out_dir = jobs.voxel_steps(context, self.filepath)
        except Exception as exc:  # noqa: BLE001
            self.report({"ERROR"}, _message(exc))
            return {"CANCELLED"}
        return _run_steps(self, context, steps, out_dir)


class IMAGE2LEGO_OT_preview_input(bpy.types.Operator):
    """Show the grayscale image and the mask the network will see"""

    bl_idname = "image2lego.preview_input"
    bl_label = "Preview"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        s = getattr(context.scene, "image2lego", None)
        return s is not None and bool(s.image_path)

    def execute(self, context):
        try:
            jobs.preview_input(context)
        except Exception as exc:  # noqa: BLE001
            self.report({"ERROR"}, _message(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class IMAGE2LEGO_OT_highlight_stress(bpy.types.Operator):
    """Colour the bricks by stability stress (green safe … red/magenta failing), or back"""

    bl_idname = "image2lego.highlight_stress"
    bl_label = "Highlight Stress"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return lego_scene.find_model_collection(context) is not None

    def execute(self, context):
        try:
            mode = jobs.toggle_stress(context)
        except Exception as exc:  # noqa: BLE001
            self.report({"ERROR"}, _message(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, "Showing stress" if mode == "stress" else "Showing colours")
        return {"FINISHED"}


classes = (
    IMAGE2LEGO_OT_image_to_lego,
    IMAGE2LEGO_OT_voxels_to_lego,
    IMAGE2LEGO_OT_preview_input,
    IMAGE2LEGO_OT_highlight_stress,
)


def register() -> None:
    pass  # operators/__init__.py registers ``classes``


def unregister() -> None:
    pass

"""Build operators: Image → LEGO and Voxels → LEGO (worker thread + modal timer, cancellable),
input preview and the stress highlight toggle. The work lives in :mod:`..blender.jobs`."""

from __future__ import annotations

import bpy
from bpy.props import StringProperty
from bpy_extras.io_utils import ImportHelper

from ..blender import jobs
from ..blender import scene as lego_scene
from ..blender.background import StepJob
from ..lego import progress


def _built(op, context, coll) -> None:
    """Report the built model, with a WARNING for everything the user must know."""
    n = len(lego_scene.model_from_collection(coll))
    warnings = list(coll.get("i2l_warnings", []))
    if warnings:
        op.report({"WARNING"}, f"{coll.name}: {n} bricks, but " + "; ".join(warnings))
    else:
        op.report({"INFO"}, f"{coll.name}: {n} bricks")


def _run_steps(op, context, steps, out_dir, name=None, source=None):
    """Drive a step generator to the end synchronously (headless: no window, no timers)."""
    wm = context.window_manager
    wm.progress_begin(0, 100)
    try:
        result = progress.run(steps, lambda p: wm.progress_update(int(p.fraction * 100)))
        coll = jobs.finish(context, result, name=name, out_dir=out_dir)
        lego_scene.set_source(coll, source)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a clear report
        op.report({"ERROR"}, _message(exc))
        return {"CANCELLED"}
    finally:
        wm.progress_end()
    _built(op, context, coll)
    return {"FINISHED"}


def has_image(context) -> bool:
    """Whether the scene's Image2LEGO settings name an input image (the image operators' poll)."""
    s = getattr(context.scene, "image2lego", None)
    return s is not None and bool(s.image_path)


#: what a grayed-out button's tooltip says (Operator.poll_message_set)
NO_MODEL = "No LEGO model in this scene: build one first"
NO_IMAGE = "Choose an input image first (LEGO tab, Input section)"
NO_MESH = "Select one or more mesh objects first"


def poll_model(cls, context) -> bool:
    """The poll of every operator that works on the scene's model: says why when there is none."""
    if lego_scene.find_model_collection(context) is not None:
        return True
    cls.poll_message_set(NO_MODEL)
    return False


def poll_image(cls, context) -> bool:
    """The poll of every operator that needs the input image: says why when none is chosen."""
    if has_image(context):
        return True
    cls.poll_message_set(NO_IMAGE)
    return False


def _message(exc: BaseException) -> str:
    if isinstance(exc, (jobs.JobError, ValueError, FileNotFoundError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class _BackgroundJob:
    """Mixin: run a step generator on a worker thread (:mod:`..blender.background`) while a
    modal timer shows its progress; ESC cancels at once and the scene stays as it was."""

    _label = "Image2LEGO"
    _job = None
    _timer = None
    _name = None
    _source = None

    #: set by ``invoke`` (the UI); ``execute`` alone (scripts, ``bpy.ops…()``) runs synchronously
    _interactive = False

    def _launch(self, context, steps, out_dir, name=None, source=None):
        if not self._interactive or context.window is None or bpy.app.background:
            return _run_steps(self, context, steps, out_dir, name, source)
        self._source = source
        # the worker also writes the files and computes the stats: the main thread only builds
        # the scene at the end (the longest UI freeze, see benchmarks/bench_blender_ui.py)
        self._name = jobs.model_name(context, name)
        # a step run in a child process (blender/subproc.py) is killed at once on ESC
        job = StepJob(jobs.prepare_steps(steps, out_dir, self._name))
        job.on_cancel = getattr(steps, "kill", None)
        self._job = job.start()
        wm = context.window_manager
        wm.progress_begin(0, 100)
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        self._status(context, f"{self._label}: starting (ESC cancels)")
        return {"RUNNING_MODAL"}

    def _status(self, context, text) -> None:
        if context.workspace is not None:
            context.workspace.status_text_set(text)

    def _stop(self, context):
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        self._status(context, None)

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            self._job.cancel()
            self._stop(context)
            self.report({"WARNING"}, f"{self._label} cancelled; nothing changed")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        state, value = self._job.poll()
        if state == "running":
            if value is not None:
                context.window_manager.progress_update(int(value.fraction * 100))
                self._status(context, f"{self._label}: {value.message} (ESC cancels)")
            return {"PASS_THROUGH"}
        self._stop(context)
        if state == "error":
            self.report({"ERROR"}, _message(value))
            return {"CANCELLED"}
        try:  # the scene is built on the main thread, from the finished result only
            coll = jobs.finish(context, value, name=self._name)
            lego_scene.set_source(coll, self._source)
        except Exception as exc:  # noqa: BLE001
            self.report({"ERROR"}, _message(exc))
            return {"CANCELLED"}
        _built(self, context, coll)
        return {"FINISHED"}


class IMAGE2LEGO_OT_image_to_lego(_BackgroundJob, bpy.types.Operator):
    """Turn the input image into a LEGO model (runs in the background; ESC cancels)"""

    bl_idname = "image2lego.image_to_lego"
    bl_label = "Image → LEGO"
    bl_options = {"REGISTER", "UNDO"}
    _label = "Image → LEGO"

    @classmethod
    def poll(cls, context):
        return poll_image(cls, context)

    def execute(self, context):
        try:
            steps, out_dir = jobs.image_steps(context, child=self._interactive)
        except Exception as exc:  # noqa: BLE001
            self.report({"ERROR"}, _message(exc))
            return {"CANCELLED"}
        return self._launch(context, steps, out_dir, source={"kind": "image"})

    def invoke(self, context, event):
        self._interactive = True
        return self.execute(context)


class IMAGE2LEGO_OT_voxels_to_lego(_BackgroundJob, bpy.types.Operator, ImportHelper):
    """Build a LEGO model from a voxel grid (.npy/.npz bool array [x, y, z], Z up)"""

    bl_idname = "image2lego.voxels_to_lego"
    bl_label = "Voxels → LEGO"
    bl_options = {"REGISTER", "UNDO"}
    _label = "Voxels → LEGO"

    filename_ext = ".npy"
    filter_glob: StringProperty(default="*.npy;*.npz", options={"HIDDEN"})

    def execute(self, context):
        try:
            steps, out_dir = jobs.voxel_steps(context, self.filepath, child=self._interactive)
        except Exception as exc:  # noqa: BLE001
            self.report({"ERROR"}, _message(exc))
            return {"CANCELLED"}
        path = bpy.path.abspath(self.filepath)
        return self._launch(context, steps, out_dir, source={"kind": "voxels", "path": path})

    def invoke(self, context, event):
        self._interactive = True
        if self.filepath:  # given by the caller (Update Model): no file browser
            return self.execute(context)
        return ImportHelper.invoke(self, context, event)


class IMAGE2LEGO_OT_brickify_selected(_BackgroundJob, bpy.types.Operator):
    """Turn the selected mesh objects into a LEGO model, colored from their textures, vertex
    colors or materials (runs in the background; ESC cancels)"""

    bl_idname = "image2lego.brickify_selected"
    bl_label = "Brickify Selected"
    bl_options = {"REGISTER", "UNDO"}
    _label = "Brickify"

    #: Update Model: rebuild into this model instead of a new one
    model_name: StringProperty(options={"SKIP_SAVE", "HIDDEN"})

    @classmethod
    def poll(cls, context):
        if any(o.type == "MESH" for o in getattr(context, "selected_objects", [])):
            return True
        cls.poll_message_set(NO_MESH)
        return False

    def execute(self, context):
        try:
            steps, out_dir, name, objects = jobs.brickify_steps(context)
        except Exception as exc:  # noqa: BLE001
            self.report({"ERROR"}, _message(exc))
            return {"CANCELLED"}
        source = {"kind": "brickify", "objects": objects}
        return self._launch(context, steps, out_dir, self.model_name or name, source)

    def invoke(self, context, event):
        self._interactive = True
        return self.execute(context)


class IMAGE2LEGO_OT_preview_input(bpy.types.Operator):
    """Show the grayscale image and the mask the network will see"""

    bl_idname = "image2lego.preview_input"
    bl_label = "Preview"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        return poll_image(cls, context)

    def execute(self, context):
        try:
            jobs.preview_input(context)
        except Exception as exc:  # noqa: BLE001
            self.report({"ERROR"}, _message(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class IMAGE2LEGO_OT_highlight_stress(bpy.types.Operator):
    """Color the bricks by stability stress (green safe … red/magenta failing), or back"""

    bl_idname = "image2lego.highlight_stress"
    bl_label = "Highlight Stress"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return poll_model(cls, context)

    def execute(self, context):
        try:
            mode = jobs.toggle_stress(context)
        except Exception as exc:  # noqa: BLE001
            self.report({"ERROR"}, _message(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, "Showing stress" if mode == "stress" else "Showing colors")
        return {"FINISHED"}


class IMAGE2LEGO_OT_select_added(bpy.types.Operator):
    """Select the bricks the build added to hold the model together (bridges and supports
    under floating pieces, props under overhangs)"""

    bl_idname = "image2lego.select_added"
    bl_label = "Select Added Bricks"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return poll_model(cls, context)

    def execute(self, context):
        try:
            n = lego_scene.select_added(context, lego_scene.find_model_collection(context))
        except Exception as exc:  # noqa: BLE001
            self.report({"ERROR"}, _message(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"{n} added brick(s)" if n else "Nothing was added to this model")
        return {"FINISHED"}


classes = (
    IMAGE2LEGO_OT_image_to_lego,
    IMAGE2LEGO_OT_voxels_to_lego,
    IMAGE2LEGO_OT_brickify_selected,
    IMAGE2LEGO_OT_preview_input,
    IMAGE2LEGO_OT_highlight_stress,
    IMAGE2LEGO_OT_select_added,
)


def register() -> None:
    pass  # operators/__init__.py registers ``classes``


def unregister() -> None:
    pass

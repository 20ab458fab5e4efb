"""LDraw import/export and parts-list export. The work lives in :mod:`..blender.jobs`."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from ..blender import jobs
from .build import poll_model


def _fail(op, exc) -> set[str]:
    msg = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
    op.report({"ERROR"}, msg)
    return {"CANCELLED"}


class IMAGE2LEGO_OT_import_ldraw(bpy.types.Operator, ImportHelper):
    """Import an Image2LEGO .ldr/.mpd file as a LEGO model"""

    bl_idname = "image2lego.import_ldraw"
    bl_label = "Import LDraw"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".ldr"
    filter_glob: StringProperty(default="*.ldr;*.mpd", options={"HIDDEN"})

    def invoke(self, context, event):
        if self.filepath:  # dropped on the 3D Viewport (file handler): no file browser
            return self.execute(context)
        return ImportHelper.invoke(self, context, event)

    def execute(self, context):
        try:
            coll = jobs.import_ldraw(context, self.filepath)
        except Exception as exc:  # noqa: BLE001
            return _fail(self, exc)
        self.report({"INFO"}, f"Imported {coll.name}")
        return {"FINISHED"}


class IMAGE2LEGO_OT_export_ldraw(bpy.types.Operator, ExportHelper):
    """Export the LEGO model as LDraw (.ldr, or .mpd with one submodel per step)"""

    bl_idname = "image2lego.export_ldraw"
    bl_label = "Export LDraw"
    bl_options = {"REGISTER"}

    filename_ext = ".ldr"
    filter_glob: StringProperty(default="*.ldr;*.mpd", options={"HIDDEN"})

    @classmethod
    def poll(cls, context):
        return poll_model(cls, context)

    def execute(self, context):
        try:
            path = jobs.export_ldraw(context, self.filepath)
        except Exception as exc:  # noqa: BLE001
            return _fail(self, exc)
        self.report({"INFO"}, f"Wrote {path}")
        return {"FINISHED"}


class IMAGE2LEGO_OT_export_parts(bpy.types.Operator, ExportHelper):
    """Export the parts list (CSV, BrickLink wanted-list XML or Rebrickable CSV)"""

    bl_idname = "image2lego.export_parts"
    bl_label = "Export Parts List"
    bl_options = {"REGISTER"}

    filename_ext = ".csv"
    filter_glob: StringProperty(default="*.csv;*.xml", options={"HIDDEN"})
    format: EnumProperty(
        name="Format",
        items=[
            ("csv", "CSV", "Part, color, quantity"),
            ("bricklink", "BrickLink XML", "BrickLink wanted list (.xml)"),
            ("rebrickable", "Rebrickable CSV", "Rebrickable parts list (.csv)"),
        ],
        default="csv",
    )
    skip_unknown: BoolProperty(
        name="Skip Unknown Colors",
        description="Leave out colors the service has no id for instead of failing",
        default=False,
    )

    @classmethod
    def poll(cls, context):
        return poll_model(cls, context)

    def check(self, context):
        # the file browser's extension follows the format (BrickLink writes .xml)
        self.filename_ext = jobs.PARTS_EXT[self.format]
        return ExportHelper.check(self, context)

    def execute(self, context):
        try:
            path = jobs.export_parts(context, self.filepath, self.format, self.skip_unknown)
        except Exception as exc:  # noqa: BLE001
            return _fail(self, exc)
        self.report({"INFO"}, f"Wrote {path}")
        return {"FINISHED"}


classes = (IMAGE2LEGO_OT_import_ldraw, IMAGE2LEGO_OT_export_ldraw, IMAGE2LEGO_OT_export_parts)


def register() -> None:
    pass  # operators/__init__.py registers ``classes``


def unregister() -> None:
    pass

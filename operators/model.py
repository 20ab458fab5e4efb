"""Model operators: Remove Model, Update Model, open a dropped image; the File → Import /
Export and Object menu entries and the drag-and-drop file handlers."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import CollectionProperty, StringProperty

from ..blender import scene as lego_scene

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


class IMAGE2LEGO_OT_remove_model(bpy.types.Operator):
    """Delete the LEGO model and everything it created (step parents, instancer, parts);
    objects you added to its collection are kept"""

    bl_idname = "image2lego.remove_model"
    bl_label = "Remove Model"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return lego_scene.find_model_collection(context) is not None

    def invoke(self, context, event):
        return context.window_manager.invoke_confirm(self, event)

    def execute(self, context):
        coll = lego_scene.find_model_collection(context)
        name = coll.name
        lego_scene.remove_model(coll)
        self.report({"INFO"}, f"Removed {name}")
        return {"FINISHED"}


class IMAGE2LEGO_OT_update_model(bpy.types.Operator):
    """Build the model again from its image with the settings shown for it (replaces it)"""

    bl_idname = "image2lego.update_model"
    bl_label = "Update Model"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        coll = lego_scene.find_model_collection(context)
        ms = getattr(coll, "image2lego", None) if coll is not None else None
        return ms is not None and bool(ms.image_path)

    def _prepare(self, context):
        from ..blender.properties import copy_settings

        coll = lego_scene.find_model_collection(context)
        copy_settings(coll.image2lego, context.scene.image2lego)
        context.scene.image2lego.model_name = coll[lego_scene.MARK_KEY]

    def execute(self, context):
        self._prepare(context)
        return bpy.ops.image2lego.image_to_lego("EXEC_DEFAULT")

    def invoke(self, context, event):
        self._prepare(context)
        return bpy.ops.image2lego.image_to_lego("INVOKE_DEFAULT")


class IMAGE2LEGO_OT_open_image(bpy.types.Operator):
    """Use an image file (e.g. dropped on the 3D Viewport) as the input and run Image → LEGO"""

    bl_idname = "image2lego.open_image"
    bl_label = "Image → LEGO from File"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})
    directory: StringProperty(subtype="DIR_PATH", options={"SKIP_SAVE", "HIDDEN"})
    files: CollectionProperty(type=bpy.types.OperatorFileListElement, options={"SKIP_SAVE"})

    def _path(self) -> str:
        if self.files and self.directory:
            return str(Path(self.directory) / self.files[0].name)
        return self.filepath

    def _set(self, context) -> bool:
        path = self._path()
        if not path.lower().endswith(IMAGE_EXTS):
            self.report({"ERROR"}, f"not an image file: {path}")
            return False
        context.scene.image2lego.image_path = path
        return True

    def execute(self, context):
        if not self._set(context):
            return {"CANCELLED"}
        return bpy.ops.image2lego.image_to_lego("EXEC_DEFAULT")

    def invoke(self, context, event):
        if not self._set(context):
            return {"CANCELLED"}
        return bpy.ops.image2lego.image_to_lego("INVOKE_DEFAULT")


def _menu_import(self, context):
    self.layout.operator("image2lego.import_ldraw", text="LDraw (.ldr/.mpd)")


def _menu_export(self, context):
    self.layout.operator("image2lego.export_ldraw", text="LDraw (.ldr/.mpd)")
    self.layout.operator("image2lego.export_parts", text="LEGO Parts List (.csv/.xml)")


def _menu_object(self, context):
    self.layout.separator()
    self.layout.operator("image2lego.brickify_selected", icon="MESH_GRID")


_MENUS = (
    ("TOPBAR_MT_file_import", _menu_import),
    ("TOPBAR_MT_file_export", _menu_export),
    ("VIEW3D_MT_object", _menu_object),
)


def _in_3d_view(context) -> bool:
    area = getattr(context, "area", None)
    return area is not None and area.type == "VIEW_3D"


classes = [IMAGE2LEGO_OT_remove_model, IMAGE2LEGO_OT_update_model, IMAGE2LEGO_OT_open_image]

if hasattr(bpy.types, "FileHandler"):  # Blender 4.1+: drag and drop onto the 3D Viewport

    class IMAGE2LEGO_FH_ldraw(bpy.types.FileHandler):
        bl_idname = "IMAGE2LEGO_FH_ldraw"
        bl_label = "LDraw model (Image2LEGO)"
        bl_import_operator = "image2lego.import_ldraw"
        bl_file_extensions = ".ldr;.mpd"

        @classmethod
        def poll_drop(cls, context):
            return _in_3d_view(context)

    class IMAGE2LEGO_FH_image(bpy.types.FileHandler):
        bl_idname = "IMAGE2LEGO_FH_image"
        bl_label = "Image → LEGO (Image2LEGO)"
        bl_import_operator = "image2lego.open_image"
        bl_file_extensions = ";".join(IMAGE_EXTS)

        @classmethod
        def poll_drop(cls, context):
            return _in_3d_view(context)

    classes += [IMAGE2LEGO_FH_ldraw, IMAGE2LEGO_FH_image]

classes = tuple(classes)


def register_extra() -> None:
    for menu, fn in _MENUS:
        getattr(bpy.types, menu).append(fn)


def unregister_extra() -> None:
    for menu, fn in reversed(_MENUS):
        try:
            getattr(bpy.types, menu).remove(fn)
        except (ValueError, AttributeError):
            pass


def register() -> None:
    pass  # operators/__init__.py registers ``classes`` and calls ``register_extra``


def unregister() -> None:
    pass

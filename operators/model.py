"""Model operators: Remove Model, Update Model, open a dropped image; the File → Import /
Export and Object menu entries and the drag-and-drop file handlers."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import CollectionProperty, StringProperty

from ..blender import scene as lego_scene
from .build import poll_model

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


class IMAGE2LEGO_OT_remove_model(bpy.types.Operator):
    """Delete the LEGO model and everything it created (step parents, instancer, parts);
    objects you added to its collection are kept"""

    bl_idname = "image2lego.remove_model"
    bl_label = "Remove Model"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return poll_model(cls, context)

    def invoke(self, context, event):
        return context.window_manager.invoke_confirm(self, event)

    def execute(self, context):
        coll = lego_scene.find_model_collection(context)
        name = coll.name
        lego_scene.remove_model(coll)
        self.report({"INFO"}, f"Removed {name}")
        return {"FINISHED"}


def _update_source(context):
    """(model collection, its source) when Update Model can rebuild it, else ``None``: an
    image model needs its image path, a voxel model its file, a brickified one its objects."""
    coll = lego_scene.find_model_collection(context)
    ms = getattr(coll, "image2lego", None) if coll is not None else None
    if ms is None:
        return None
    src = lego_scene.get_source(coll)
    if src["kind"] == "image":
        ok = bool(ms.image_path)
    elif src["kind"] == "voxels":
        ok = Path(str(src.get("path", ""))).is_file()
    elif src["kind"] == "brickify":
        ok = any(bpy.data.objects.get(n) is not None for n in src.get("objects", []))
    elif src["kind"] == "caption":
        ok = bool(src.get("text"))
    elif src["kind"] in ("face", "mosaic"):
        ok = Path(str(src.get("path", ""))).is_file()
        if src["kind"] == "face":
            from ..core.face import mediapipe_unavailable_reason

            ok = ok and mediapipe_unavailable_reason() is None
    else:
        ok = False
    return (coll, src) if ok else None


class IMAGE2LEGO_OT_update_model(bpy.types.Operator):
    """Build the model again from what it was made of (its image, voxel file, mesh objects,
    caption, or the photo of a face bust or mosaic) with the settings shown for it (replaces
    it)"""

    bl_idname = "image2lego.update_model"
    bl_label = "Update Model"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        if not poll_model(cls, context):
            return False
        if _update_source(context) is None:
            cls.poll_message_set(
                "Nothing to rebuild this model from: it was imported, or its image, voxel "
                "file, photo or objects are gone"
            )
            return False
        return True

    def _run(self, context, how: str):
        from ..blender.properties import copy_settings

        found = _update_source(context)
        if found is None:
            self.report({"ERROR"}, "this model's image, voxel file, photo or objects are gone")
            return {"CANCELLED"}
        coll, src = found
        name = coll[lego_scene.MARK_KEY]
        copy_settings(coll.image2lego, context.scene.image2lego)
        context.scene.image2lego.model_name = name
        if src["kind"] == "voxels":
            return bpy.ops.image2lego.voxels_to_lego(how, filepath=src["path"])
        if src["kind"] == "caption":
            return bpy.ops.image2lego.caption_to_lego(
                how, text=src["text"], variant=int(src.get("variant", 0))
            )
        if src["kind"] in ("face", "mosaic"):
            # the photo it was made from, with the settings stored beside it (the defaults
            # for a model made before they were stored)
            context.scene.image2lego.image_path = str(src["path"])
        if src["kind"] == "face":
            return bpy.ops.image2lego.face_to_lego(
                how, size=int(src.get("size", 16)), colors=int(src.get("colors", 4))
            )
        if src["kind"] == "mosaic":
            keys = ("width", "height", "colors", "element", "dither", "standing")
            opt = {k: src[k] for k in keys if k in src}
            return bpy.ops.image2lego.mosaic(how, model_name=name, **opt)
        if src["kind"] == "brickify":
            obs = [bpy.data.objects.get(n) for n in src["objects"]]
            obs = [o for o in obs if o is not None and o.name in context.view_layer.objects]
            if not obs:
                self.report({"ERROR"}, "the brickified objects are not in this view layer")
                return {"CANCELLED"}
            for o in context.view_layer.objects.selected:
                o.select_set(False)
            for o in obs:
                o.select_set(True)
            context.view_layer.objects.active = obs[0]
            # a voxels operator invoked would open its file browser: brickify has none
            return bpy.ops.image2lego.brickify_selected(how, model_name=name)
        return bpy.ops.image2lego.image_to_lego(how)

    def execute(self, context):
        return self._run(context, "EXEC_DEFAULT")

    def invoke(self, context, event):
        return self._run(context, "INVOKE_DEFAULT")


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

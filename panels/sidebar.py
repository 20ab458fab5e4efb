"""3D Viewport → Sidebar (N) → "LEGO": Input, Model, Colors, Bricks, Output, Stats."""

from __future__ import annotations

import bpy

from ..blender import jobs
from ..blender import scene as lego_scene

CATEGORY = "LEGO"
#: characters per label line: Blender cuts a longer label with "…" at the sidebar's default
#: width (labels do not wrap), so sentences are split over lines (benchmarks/_ui_check.py)
WRAP = 40


def wrapped_label(layout, text: str, icon: str = "NONE") -> None:
    """``text`` as lines of at most :data:`WRAP` characters, the icon on the first only."""
    import textwrap

    col = layout.column(align=True)
    for i, line in enumerate(textwrap.wrap(text, WRAP) or [""]):
        col.label(text=line, icon=icon if i == 0 else ("BLANK1" if icon != "NONE" else "NONE"))


class _Base:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY

    @classmethod
    def poll(cls, context):
        return getattr(context.scene, "image2lego", None) is not None


class IMAGE2LEGO_PT_main(_Base, bpy.types.Panel):
    bl_idname = "IMAGE2LEGO_PT_main"
    bl_label = "Image2LEGO"

    def draw(self, context):
        layout = self.layout
        s = context.scene.image2lego
        msg = jobs.dependencies_missing_message()
        if msg:
            box = layout.box()
            wrapped_label(box, msg.split(". ")[0] + ".", icon="ERROR")
            wrapped_label(box, "Install the Image2LEGO zip built for this platform.")
        layout.prop(s, "model_name")
        row = layout.row(align=True)
        row.scale_y = 1.4
        row.operator("image2lego.image_to_lego", icon="IMAGE_DATA")
        row = layout.row(align=True)
        row.operator("image2lego.brickify_selected", icon="MESH_CUBE")
        row = layout.row(align=True)
        row.operator("image2lego.voxels_to_lego", icon="MESH_GRID")
        row.operator("image2lego.import_ldraw", icon="IMPORT")


class IMAGE2LEGO_PT_input(_Base, bpy.types.Panel):
    bl_idname = "IMAGE2LEGO_PT_input"
    bl_label = "Input"
    bl_parent_id = "IMAGE2LEGO_PT_main"

    def draw(self, context):
        layout = self.layout
        s = context.scene.image2lego
        layout.prop(s, "image_path", text="")
        layout.operator("image2lego.preview_input", icon="HIDE_OFF")
        img = bpy.data.images.get(jobs.PREVIEW_IMAGE)
        mask = bpy.data.images.get(jobs.PREVIEW_MASK)
        if img is not None and mask is not None:
            row = layout.row()
            for im, label in ((img, "Image"), (mask, "Mask")):
                col = row.column()
                col.label(text=label)
                if im.preview is not None:
                    col.template_icon(icon_value=im.preview.icon_id, scale=6.0)


class IMAGE2LEGO_PT_model(_Base, bpy.types.Panel):
    bl_idname = "IMAGE2LEGO_PT_model"
    bl_label = "Model"
    bl_parent_id = "IMAGE2LEGO_PT_main"

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        s = context.scene.image2lego
        layout.prop(s, "resolution")
        layout.prop(s, "hollow")
        if s.hollow == "shell":
            layout.prop(s, "wall_thickness")
            layout.prop(s, "supports")
        layout.prop(s, "scale_mode")
        layout.prop(s, "seed")
        layout.prop(s, "repair")
        row = layout.row()
        row.active = s.repair
        row.prop(s, "reinforce")
        layout.prop(s, "drop_fragments")


class IMAGE2LEGO_PT_colors(_Base, bpy.types.Panel):
    bl_idname = "IMAGE2LEGO_PT_colors"
    bl_label = "Colors"
    bl_parent_id = "IMAGE2LEGO_PT_main"

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        s = context.scene.image2lego
        layout.prop(s, "color_mode")
        if s.color_mode == "photo":
            layout.prop(s, "k_colors")
        elif s.color_mode == "single":
            layout.prop(s, "single_color")
        layout.prop(s, "real_elements")


class IMAGE2LEGO_PT_bricks(_Base, bpy.types.Panel):
    bl_idname = "IMAGE2LEGO_PT_bricks"
    bl_label = "Bricks"
    bl_parent_id = "IMAGE2LEGO_PT_main"

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        s = context.scene.image2lego
        layout.prop(s, "brick_types")
        layout.prop(s, "method")


class IMAGE2LEGO_PT_output(_Base, bpy.types.Panel):
    bl_idname = "IMAGE2LEGO_PT_output"
    bl_label = "Output"
    bl_parent_id = "IMAGE2LEGO_PT_main"

    def draw(self, context):
        layout = self.layout
        s = context.scene.image2lego
        layout.prop(s, "output_dir", text="")
        col = layout.column(align=True)
        col.operator("image2lego.export_ldraw", icon="EXPORT")
        col.operator("image2lego.export_parts", icon="TEXT")


def _yes_no(v) -> str:
    return "unknown" if v is None else ("yes" if v else "no")


class IMAGE2LEGO_PT_this_model(_Base, bpy.types.Panel):
    """The active model: the settings it was built with (editable), Update and Remove, and
    what to do with it next (instructions, build animation)."""

    bl_idname = "IMAGE2LEGO_PT_this_model"
    bl_label = "Active Model"
    bl_parent_id = "IMAGE2LEGO_PT_main"

    def draw(self, context):
        layout = self.layout
        coll = lego_scene.find_model_collection(context)
        if coll is None:
            layout.label(text="No LEGO model in the scene yet.")
            return
        layout.label(text=coll.name, icon="OUTLINER_COLLECTION")
        for w in coll.get("i2l_warnings", []):
            wrapped_label(layout, w[:1].upper() + w[1:], icon="ERROR")
        ms = getattr(coll, "image2lego", None)
        if ms is not None:
            col = layout.column(align=True)
            col.label(text="Built with:")
            for key in ("image_path", "resolution", "hollow", "brick_types", "color_mode"):
                if hasattr(ms, key):
                    col.prop(ms, key)
        row = layout.row(align=True)
        row.operator("image2lego.update_model", icon="FILE_REFRESH")
        row.operator("image2lego.remove_model", icon="TRASH")
        col = layout.column(align=True)
        col.operator("image2lego.render_instructions", icon="RENDER_STILL")
        row = col.row(align=True)
        row.operator("image2lego.animate_build", icon="RENDER_ANIMATION")
        row.operator("image2lego.clear_animation", icon="X")


class IMAGE2LEGO_PT_stats(_Base, bpy.types.Panel):
    bl_idname = "IMAGE2LEGO_PT_stats"
    bl_label = "Stats"
    bl_parent_id = "IMAGE2LEGO_PT_main"

    def draw(self, context):
        layout = self.layout
        coll = lego_scene.find_model_collection(context)
        if coll is None:
            layout.label(text="No LEGO model in the scene yet.")
            return
        st = lego_scene.get_stats(coll)
        col = layout.column(align=True)
        col.label(text=f"Model: {coll.name}")
        for key, label in (
            ("bricks", "Bricks"),
            ("parts", "Distinct parts"),
            ("colors", "Colors"),
            ("layers", "Layers"),
            ("steps", "Build steps"),
        ):
            col.label(text=f"{label}: {st.get(key, '?')}")
        col.label(text=f"Connected: {_yes_no(st.get('connected'))}")
        if "max_stress" in st:
            ms = float(st["max_stress"] if st["max_stress"] is not None else "nan")
            col.label(text=f"Max stress: {ms:.2f}" if ms < 1e300 else "Max stress: ∞")
            col.label(text=f"Stable: {_yes_no(st.get('stable'))}")
            col.label(text=f"Unsupported bricks: {st.get('unsupported_bricks', 0)}")
            if st.get("props_added"):
                col.label(text=f"Props added by repair: {st['props_added']}")
        join = st.get("join") or {}
        if join.get("bridges") or join.get("supports"):
            wrapped_label(
                col,
                f"Joined floating pieces: {join.get('bridges', 0)} bridge(s), "
                f"{join.get('supports', 0)} support(s), {join.get('added_cells', 0)} cells",
            )
        if st.get("added_bricks"):
            col.label(text=f"Added bricks: {st['added_bricks']}")
        if st.get("fragments_dropped_cells"):
            col.label(text=f"Floating bits dropped: {st['fragments_dropped_cells']} cells")
        if st.get("not_elements"):
            col.label(text=f"Not real LEGO elements: {st['not_elements']}")
        if st.get("rare_elements"):
            col.label(text=f"Rare elements (retired or rare color): {st['rare_elements']}")
        stress = coll.get(lego_scene.DISPLAY_KEY) == "stress"
        layout.operator(
            "image2lego.highlight_stress",
            text="Show Colors" if stress else "Highlight Stress",
            icon="MOD_PHYSICS",
            depress=stress,
        )
        if st.get("added_bricks"):
            layout.operator("image2lego.select_added", icon="RESTRICT_SELECT_OFF")


classes = (
    IMAGE2LEGO_PT_main,
    IMAGE2LEGO_PT_input,
    IMAGE2LEGO_PT_model,
    IMAGE2LEGO_PT_colors,
    IMAGE2LEGO_PT_bricks,
    IMAGE2LEGO_PT_output,
    IMAGE2LEGO_PT_this_model,
    IMAGE2LEGO_PT_stats,
)


def register() -> None:
    pass  # panels/__init__.py registers ``classes``


def unregister() -> None:
    pass

"""Settings: one PropertyGroup on the Scene (what the next build uses) and on every model
collection (how that model was made).

:func:`convert_options` and :func:`pipeline_options` turn settings into the plain-Python
option objects of ``lego.convert`` and ``core.pipeline``.
"""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import (
    BoolProperty,
    EnumProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from ..lego import choices
from ..lego import colors as lego_colors

RESOLUTION_ITEMS = [
    ("4", "4³", "4 × 4 × 4 voxels", 0),
    ("8", "8³", "8 × 8 × 8 voxels", 1),
    ("16", "16³", "16 × 16 × 16 voxels", 2),
    ("32", "32³", "32 × 32 × 32 voxels", 3),
]
#: offered only while the weights in use have a 64³ level (training/level64.py)
RESOLUTION_64 = ("64", "64³", "64 × 64 × 64 voxels: the weights' 64³ level, about 5× the bricks", 4)
# Blender keeps no reference to the strings a dynamic enum returns: they must stay alive here
_items_cache: dict[tuple[str, int], list[tuple[str, str, str, int]]] = {}


def resolution_items(self, context) -> list[tuple[str, str, str, int]]:
    """4³ … 32³, and 64³ when the weights in use (the preferences' folder, else the shipped
    ones) have a 64³ level; read from their metadata once per file version."""
    from ..core.weightsmeta import META_FILE, WeightsError, resolutions_of
    from . import preferences

    d = preferences.weights_dir(context) or preferences.shipped_weights_dir()
    try:
        key = (str(d), (d / META_FILE).stat().st_mtime_ns)
    except OSError:
        key = (str(d), -1)
    if key not in _items_cache:
        try:
            has64 = 64 in resolutions_of(d)
        except (WeightsError, OSError):
            has64 = False  # the build reports the weights' problem itself
        _items_cache[key] = RESOLUTION_ITEMS + ([RESOLUTION_64] if has64 else [])
    return _items_cache[key]


def chosen_resolution(s) -> int:
    """The resolution setting as an int; one clear error when it names a level the weights in
    use lack (64³ chosen, then weights without a 64³ level selected)."""
    if not s.resolution:
        raise ValueError(
            "Resolution: these weights have no 64³ level; choose 32³ or select weights with one"
        )
    return int(s.resolution)


def _color_items():
    out = []
    for code, c in sorted(lego_colors.LDRAW_COLORS.items(), key=lambda kv: kv[1].name):
        out.append((str(code), c.name, f"LDraw color {code} ({c.hex})"))
    return out


#: Built once: Blender keeps references to the strings of static enum items.
_COLOR_ITEMS = _color_items()
_DEFAULT_COLOR = "71" if any(i[0] == "71" for i in _COLOR_ITEMS) else _COLOR_ITEMS[0][0]


#: ``PATH_SUPPORTS_BLEND_RELATIVE`` exists from Blender 4.5; 4.2 LTS rejects the option, so
#: older versions get none (paths there are still resolved with ``bpy.path.abspath``).
_BLEND_RELATIVE = (
    {"options": {"PATH_SUPPORTS_BLEND_RELATIVE"}} if bpy.app.version >= (4, 5, 0) else {}
)


class Image2LegoSettings(bpy.types.PropertyGroup):
    image_path: StringProperty(
        name="Image",
        description="Photo of one object to turn into LEGO",
        subtype="FILE_PATH",
        **_BLEND_RELATIVE,
    )
    model_name: StringProperty(
        name="Name",
        description="Name of the model's collection; building again with the same name replaces it",
        default="LEGO Model",
    )
    resolution: EnumProperty(
        name="Resolution",
        description="Voxel resolution the network predicts (one stud per voxel)",
        items=resolution_items,
        default=3,  # 32³ (a dynamic enum's default is the item's number)
    )
    hollow: EnumProperty(
        name="Interior",
        description="Fill the inside with bricks, or build only a shell",
        items=choices.enum_items(choices.HOLLOW),
        default="fill",
    )
    wall_thickness: IntProperty(
        name="Wall Thickness",
        description="Shell wall thickness in studs",
        default=1,
        min=1,
        max=8,
    )
    supports: BoolProperty(
        name="Internal Supports",
        description="Add hidden internal supports in shell mode",
        default=True,
    )
    repair: BoolProperty(
        name="Repair for Stability",
        description="Check the model with the static-equilibrium analysis and re-tile weak spots",
        default=True,
    )
    reinforce: BoolProperty(
        name="Add Props",
        description=(
            "Where re-tiling cannot hold an overhang, add visible 1x1 props under it "
            "(off: keep the exact shape and report what would not hold)"
        ),
        default=True,
    )
    real_elements: BoolProperty(
        name="Real LEGO Elements Only",
        description=(
            "Use only part and color combinations that LEGO makes (Rebrickable's element "
            "table): a part missing in its color is split into parts that exist, or recolored"
        ),
        default=True,
    )
    drop_fragments: BoolProperty(
        name="Drop Floating Bits",
        description=(
            "Photos: remove specks of the prediction (floating pieces under 1 % of it); larger "
            "floating pieces are bridged or stood on a support either way"
        ),
        default=True,
    )
    color_mode: EnumProperty(
        name="Colors",
        description="Where the bricks' colors come from",
        items=choices.enum_items(choices.COLOR_MODE),
        default="single",
    )
    k_colors: IntProperty(
        name="Number of Colors",
        description="How many colors k-means keeps",
        default=4,
        min=1,
        max=16,
    )
    single_color: EnumProperty(
        name="Color",
        description="LEGO color of every brick in one-color mode",
        items=_COLOR_ITEMS,
        default=_DEFAULT_COLOR,
    )
    brick_types: EnumProperty(
        name="Brick Types",
        description="Which parts the model may use",
        items=choices.enum_items(choices.BRICK_TYPES),
        default="mixed",
    )
    scale_mode: EnumProperty(
        name="Scale",
        description="How voxel layers become brick and plate layers",
        items=choices.enum_items(choices.SCALE),
        default="proportional",
    )
    seed: IntProperty(name="Seed", description="Makes every random choice reproducible", min=0)
    output_dir: StringProperty(
        name="Output Folder",
        description="Where Image → LEGO writes the LDraw file and the parts list (empty: nowhere)",
        subtype="DIR_PATH",
        **_BLEND_RELATIVE,
    )
    method: EnumProperty(
        name="Instancing",
        description="How bricks are put into the scene",
        items=[
            (
                "geonodes",
                "Geometry Nodes",
                "One point cloud per build step instancing shared part meshes (fastest)",
            ),
            ("objects", "Objects", "One object per brick sharing its part's mesh (editable)"),
        ],
        default="geonodes",
    )
    display_mode: EnumProperty(
        name="Display",
        description="What the bricks' colors show",
        items=[
            ("colors", "Colors", "Bricks in their LEGO colors"),
            ("stress", "Stress", "Bricks colored by stability stress (green safe, red failing)"),
        ],
        default="colors",
    )


def copy_settings(src, dst) -> None:
    """Copy every writable property of one settings group onto another."""
    for prop in src.bl_rna.properties:
        key = prop.identifier
        if key == "rna_type" or prop.is_readonly:
            continue
        value = getattr(src, key)
        if prop.type == "ENUM" and value == "":
            continue  # a dynamic item the current weights lack (64³): nothing valid to copy
        setattr(dst, key, value)


def convert_options(s):
    """``lego.convert.ConvertOptions`` for these settings."""
    from ..lego.convert import ConvertOptions

    return ConvertOptions(
        scale=s.scale_mode,
        brick_types=s.brick_types,
        hollow=s.hollow,
        wall_thickness=int(s.wall_thickness),
        supports=bool(s.supports),
        color_mode=s.color_mode,
        k=int(s.k_colors),
        color=int(s.single_color),
        seed=int(s.seed),
        real_elements=bool(s.real_elements),
    )


def pipeline_options(s, weights_dir: str | Path | None = None):
    """``core.pipeline.PipelineOptions`` for these settings."""
    from ..core.pipeline import PipelineOptions

    return PipelineOptions(
        resolution=chosen_resolution(s),
        convert=convert_options(s),
        weights_dir=Path(weights_dir) if weights_dir else None,
        repair=bool(s.repair),
        reinforce=bool(s.reinforce),
        drop_fragments=PipelineOptions.drop_fragments if s.drop_fragments else 0.0,
    )


def image_path(s) -> Path | None:
    """The absolute input image path, or ``None`` when unset."""
    if not s.image_path:
        return None
    return Path(bpy.path.abspath(s.image_path))


def output_dir(s) -> Path | None:
    if not s.output_dir:
        return None
    return Path(bpy.path.abspath(s.output_dir))


classes = (Image2LegoSettings,)


def register() -> None:
    from .registry import register_classes, unregister_classes

    register_classes(classes)
    try:
        bpy.types.Scene.image2lego = PointerProperty(type=Image2LegoSettings)
        bpy.types.Collection.image2lego = PointerProperty(type=Image2LegoSettings)
    except Exception:
        _del_pointers()
        unregister_classes(classes)
        raise


def _del_pointers() -> None:
    for owner in (bpy.types.Collection, bpy.types.Scene):
        if hasattr(owner, "image2lego"):
            del owner.image2lego


def unregister() -> None:
    from .registry import unregister_classes

    _del_pointers()
    unregister_classes(classes)

"""Mosaic: the input image as a 2D LEGO mosaic of 1×1 tiles or plates on a plate base
(:mod:`..lego.mosaic`), built into the scene like any model (it takes a second or two)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from ..blender import jobs
from ..blender import scene as lego_scene
from .build import _built, _message, poll_image

_ELEMENTS = (
    ("tile", "Tile", "Square 1x1 tiles (3070b): a smooth picture"),
    ("round_tile", "Round Tile", "Round 1x1 tiles (98138): dots, the base shows between them"),
    ("plate", "Plate", "Square 1x1 plates (3024): studs on top"),
    ("round_plate", "Round Plate", "Round 1x1 plates (6141): dots with studs"),
)


def mosaic_result(
    context, width: int, height: int, k: int, element: str, dither: bool, standing=False
):
    """Checked inputs → (a PipelineResult holding the mosaic model, output folder, path)."""
    import numpy as np

    from ..blender import properties
    from ..core.face import load_rgb
    from ..core.pipeline import PipelineResult
    from ..lego import mosaic

    s = jobs.settings_of(context)
    path = jobs.check_image(properties.image_path(s) if s is not None else None)
    out_dir = jobs.check_output_dir(properties.output_dir(s)) if s is not None else None
    seed = int(s.seed) if s is not None else 0
    opt = mosaic.MosaicOptions(
        width=width,
        height=height,
        k=k,
        element=element,
        dither=dither,
        seed=seed,
        orientation="standing" if standing else "lying",
    )
    try:
        opt.validate()
        result = mosaic.make_mosaic(load_rgb(path), opt)
    except ValueError as exc:
        raise jobs.JobError(str(exc)) from None
    grid = np.ones((width, result.codes.shape[0], 1), dtype=bool)  # the picture's cells
    return PipelineResult(model=result.model, voxels=grid), out_dir, str(path)


class IMAGE2LEGO_OT_mosaic(bpy.types.Operator):
    """Turn the input image into a 2D LEGO mosaic: 1x1 tiles or plates in k LEGO colors
    (k-means in CIELAB, nearest by CIEDE2000) on a two-layer plate base"""

    bl_idname = "image2lego.mosaic"
    bl_label = "Mosaic"
    bl_options = {"REGISTER", "UNDO"}

    width: IntProperty(
        name="Width", description="Studs across (16 to 96, a multiple of 8)",
        default=48, min=16, max=96, step=8,
    )  # fmt: skip
    height: IntProperty(
        name="Height", description="Studs down (16 to 96, a multiple of 8)",
        default=48, min=16, max=96, step=8,
    )  # fmt: skip
    colors: IntProperty(
        name="Colors", description="Number of LEGO colors in the picture",
        default=8, min=1, max=32,
    )  # fmt: skip
    element: EnumProperty(
        name="Element", description="The 1x1 part each stud of the picture is", items=_ELEMENTS
    )
    dither: BoolProperty(
        name="Dither",
        description="Floyd–Steinberg error diffusion over the chosen LEGO colors",
        default=False,
    )
    standing: BoolProperty(
        name="Standing",
        description="An upright wall of bricks on a foot with the picture on its front, "
        "instead of tiles lying on a plate base",
        default=False,
    )

    model_name: StringProperty(options={"SKIP_SAVE", "HIDDEN"})  # Update Model keeps the name

    @classmethod
    def poll(cls, context):
        return poll_image(cls, context)

    def settings(self) -> dict:
        """What Update Model needs to build this mosaic again (stored with the model)."""
        w, h = self.width - self.width % 8, self.height - self.height % 8
        return {
            "width": w, "height": h, "colors": self.colors, "element": self.element,
            "dither": self.dither, "standing": self.standing,
        }  # fmt: skip

    def execute(self, context):
        try:
            opt = self.settings()
            result, out_dir, path = mosaic_result(
                context, opt["width"], opt["height"], opt["colors"], opt["element"],
                opt["dither"], opt["standing"],
            )  # fmt: skip
            name = self.model_name or "LEGO Mosaic"
            coll = jobs.finish(context, result, name=name, out_dir=out_dir)
            lego_scene.set_source(coll, {"kind": "mosaic", "path": path, **opt})
        except Exception as exc:  # noqa: BLE001
            self.report({"ERROR"}, _message(exc))
            return {"CANCELLED"}
        _built(self, context, coll)
        return {"FINISHED"}

    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self)


classes = (IMAGE2LEGO_OT_mosaic,)

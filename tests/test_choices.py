"""The fixed-choice options are written once (lego/choices.py): the converter, the CLI and the
Blender properties offer exactly the same values."""

from __future__ import annotations

import pytest

from image2lego import cli
from image2lego.lego import choices
from image2lego.lego.convert import ConvertOptions

OPTIONS = {  # CLI flag, ConvertOptions field, Blender property, the choices
    "scale": ("--scale", "scale", "scale_mode", choices.SCALE),
    "bricks": ("--bricks", "brick_types", "brick_types", choices.BRICK_TYPES),
    "hollow": ("--hollow", "hollow", "hollow", choices.HOLLOW),
    "color": ("--color-mode", "color_mode", "color_mode", choices.COLOR_MODE),
}


def _cli_choices(flag: str):
    for action in cli.build_parser()._actions:
        if flag in action.option_strings:
            return tuple(action.choices), action.default
    raise AssertionError(f"no {flag} option")


@pytest.mark.parametrize("name", OPTIONS)
def test_cli_and_converter_accept_the_same_values(name):
    flag, field, _, options = OPTIONS[name]
    offered, default = _cli_choices(flag)
    assert offered == choices.values(options)
    assert default == getattr(ConvertOptions(), field)
    for value in offered:
        ConvertOptions(**{field: value})  # every offered value converts
    with pytest.raises(ValueError, match=f"{field} must be one of"):
        ConvertOptions(**{field: "bogus"})


@pytest.mark.parametrize("name", OPTIONS)
def test_blender_offers_the_same_values(name):
    bpy = pytest.importorskip("bpy")
    from image2lego.blender.properties import Image2LegoSettings

    _, field, prop, options = OPTIONS[name]
    bpy.utils.register_class(Image2LegoSettings)
    try:
        rna = Image2LegoSettings.bl_rna.properties[prop]
        assert [i.identifier for i in rna.enum_items] == list(choices.values(options))
        assert rna.default == getattr(ConvertOptions(), field)
    finally:
        bpy.utils.unregister_class(Image2LegoSettings)

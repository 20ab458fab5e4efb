"""The sidebar panels and the menu entries draw without an error and use only names this
Blender has (properties, operators, icons), with and without a model in the scene."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.bpy

import image2lego  # noqa: E402
from image2lego.blender import jobs  # noqa: E402
from image2lego.blender import scene as lego_scene  # noqa: E402
from image2lego.core import face  # noqa: E402
from image2lego.lego.colors import LDRAW_COLORS  # noqa: E402

from .conftest import REPO  # noqa: E402

_spec = importlib.util.spec_from_file_location("_ui_check", REPO / "benchmarks" / "_ui_check.py")
ui_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ui_check)


@pytest.fixture(scope="module", autouse=True)
def addon():
    image2lego.register()
    yield
    image2lego.unregister()


@pytest.fixture()
def empty():
    bpy.ops.wm.read_factory_settings(use_empty=True)


def _model(tmp_path, method="geonodes"):
    g = np.zeros((6, 5, 4), dtype=bool)
    g[:, :3, 0] = True
    g[:3, :, 1:] = True
    p = tmp_path / "grid.npy"
    np.save(p, g)
    s = bpy.context.scene.image2lego
    s.method = method
    s.color_mode = "single"
    assert bpy.ops.image2lego.voxels_to_lego(filepath=str(p)) == {"FINISHED"}
    return lego_scene.find_model_collection(bpy.context)


def test_every_panel_and_menu_draws_with_known_names(empty, tmp_path, monkeypatch):
    rep = ui_check.draw_all()
    assert rep.problems == []
    assert rep.n_panels >= 8 and rep.n_menus == 3
    empty_calls = rep.calls
    coll = _model(tmp_path)
    stats = {"connected": False, "stable": False, "max_stress": 3.5, "unsupported_bricks": 12}
    coll["i2l_warnings"] = jobs.model_warnings(stats)
    join = {"bridges": 12, "supports": 3, "added_cells": 140}
    stats = {**lego_scene.get_stats(coll), "added_bricks": 2, "join": join, "props_added": 4}
    lego_scene.set_stats(coll, {**stats, "fragments_dropped_cells": 35})
    # every message box shows: missing dependencies, Face → LEGO unavailable
    monkeypatch.setattr(
        jobs,
        "dependencies_missing_message",
        lambda: "Missing in Blender's Python: scipy, scikit-learn, scikit-image, opencv. Install",
    )
    reason = "Face → LEGO needs mediapipe 0.10.21: it has no wheel for Python 3.13 (Blender 5.1+)"
    monkeypatch.setattr(face, "mediapipe_unavailable_reason", lambda: reason)
    rep = ui_check.draw_all()
    assert rep.problems == []
    assert rep.calls > empty_calls + 25  # Active Model, Stats and the boxes drew their contents
    # every sentence was split over lines the sidebar shows whole
    assert rep.long_labels == []


def test_the_checker_finds_a_bad_name(empty):
    """The recording layout is not a yes-machine: a missing property, operator, operator
    property and icon, a layout function that does not exist, and an error in draw are all
    reported."""

    class IMAGE2LEGO_PT_zz_broken(bpy.types.Panel):
        bl_idname = "IMAGE2LEGO_PT_zz_broken"
        bl_label = "Broken"
        bl_space_type = "VIEW_3D"
        bl_region_type = "UI"

        def draw(self, context):
            s = context.scene.image2lego
            self.layout.prop(s, "no_such_setting")
            self.layout.operator("image2lego.no_such_operator")
            op = self.layout.operator("image2lego.animate_build", icon="NO_SUCH_ICON")
            op.frames_per_step = 3  # exists: fine
            op.no_such_property = 1
            self.layout.no_such_function()
            self.layout.use_property_split = True  # exists: fine
            raise KeyError("boom")

    bpy.utils.register_class(IMAGE2LEGO_PT_zz_broken)
    try:
        rep = ui_check.draw_all()
    finally:
        bpy.utils.unregister_class(IMAGE2LEGO_PT_zz_broken)
    mine = [p for p in rep.problems if p.startswith("IMAGE2LEGO_PT_zz_broken")]
    assert len(mine) == 6 and len(rep.problems) == 6, "\n".join(rep.problems)
    for needle in (
        "no property 'no_such_setting'",
        "no operator 'image2lego.no_such_operator'",
        "no icon 'NO_SUCH_ICON'",
        "has no property 'no_such_property'",
        "no function 'no_such_function'",
        "KeyError",
    ):
        assert any(needle in p for p in mine), (needle, mine)


#: British spellings in a UI that Blender writes in American English (issue #18)
BRITISH = re.compile(
    r"(?i)\b(colour|grey|centre|metre|millimetre|behaviour|favour|catalogue|licence|"
    r"analys(e|ed|es|ing)\b|(optimi|organi|visuali|normali|recogni|regulari|stabili|minimi|"
    r"maximi|initiali|summari|customi|colori)s)"
)


def _rna_texts(rna) -> list[str]:
    out = []
    for p in rna.properties:
        if p.identifier == "rna_type":
            continue
        out += [p.name, p.description]
        if p.type == "ENUM":
            out += [s for item in p.enum_items for s in (item.name, item.description)]
    return out


def test_the_ui_speaks_american_english(empty, tmp_path):
    """Every setting, operator (tooltip, its options), panel title and drawn text."""
    texts = _rna_texts(bpy.types.Scene.bl_rna.properties["image2lego"].fixed_type)
    texts += _rna_texts(bpy.types.Collection.bl_rna.properties["image2lego"].fixed_type)
    for n in dir(bpy.types):
        if n.startswith("IMAGE2LEGO_OT_"):
            rna = getattr(bpy.ops.image2lego, n.removeprefix("IMAGE2LEGO_OT_")).get_rna_type()
            texts += [rna.name, rna.description, *_rna_texts(rna)]
    texts += [cls.bl_label for cls in ui_check.panels()]
    _model(tmp_path)
    texts += ui_check.draw_all().texts
    assert len(texts) > 150
    # LDraw's colour names are proper names ("Light Bluish Grey"): the one exception
    names = sorted((c.name for c in LDRAW_COLORS.values()), key=len, reverse=True)
    for name in names:
        texts = [t.replace(name, "") for t in texts]
    british = sorted({t for t in texts if BRITISH.search(t)})
    assert british == []

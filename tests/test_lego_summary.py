"""lego.summary.model_summary: the one set of model facts (report.json and Blender's Stats)."""

from __future__ import annotations

import json

from image2lego.lego.bricks import Brick, BrickModel
from image2lego.lego.repair import repair
from image2lego.lego.stability import analyze_stability
from image2lego.lego.summary import model_summary


def model(bricks, shape=(10, 10, 12)):
    return BrickModel(list(bricks), shape)


def test_counts_and_connectivity():
    m = model(
        [Brick(z=0, y=0, x=0, part_id="3001"), Brick(z=3, y=0, x=0, part_id="3001", color=1)]
        + [Brick(z=0, y=6, x=6, part_id="3024")]
    )
    s = model_summary(m)
    assert (s["bricks"], s["parts"], s["colors"], s["layers"]) == (3, 2, 2, 2)
    # the 1x1 plate stands apart: two pieces, both on the ground
    assert s["components"] == 2 and s["connected"] is False and s["ungrounded_bricks"] == 0
    assert "stable" not in s and "repair" not in s
    assert s["not_elements"] == 0 and s["rare_elements"] == 0 and "elements" not in s


def test_elements_that_do_not_exist_or_are_rare_are_counted():
    m = model(
        [Brick(z=0, y=0, x=0, part_id="3024", color=371)]  # Medium Tan: no 1x1 plate
        + [Brick(z=0, y=2, x=0, part_id="3001", color=7), Brick(z=3, y=2, x=0, part_id="3001")]
    )
    m.meta["elements"] = {"split": 2, "recoloured": 0}
    s = model_summary(m)
    assert s["not_elements"] == 1 and s["rare_elements"] == 1  # old Light Grey: retired
    assert s["elements"] == {"split": 2, "recoloured": 0}


def test_floating_brick_is_ungrounded_and_unsupported():
    m = model([Brick(z=0, y=0, x=0, part_id="3001"), Brick(z=6, y=6, x=6, part_id="3001")])
    s = model_summary(m, analyze_stability(m))
    assert s["ungrounded_bricks"] == 1 and s["unsupported_bricks"] == 1
    assert s["stable"] is False and s["max_stress"] == "inf"
    json.dumps(s)  # always JSON-able, infinity included


def test_repair_report_gives_the_repaired_facts():
    m = model([Brick(z=0, y=0, x=0, part_id="3001"), Brick(z=3, y=0, x=0, part_id="3001")])
    fixed, rep = repair(m)
    s = model_summary(fixed, rep)
    assert s["stable"] is True and s["unsupported_bricks"] == 0 and s["props_added"] == 0
    assert s["repair"]["after"]["stable"] is True
    json.dumps(s)


def test_empty_model():
    s = model_summary(model([]))
    assert s["bricks"] == 0 and s["connected"] is None and s["components"] == 0

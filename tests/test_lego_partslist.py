"""Parts lists: CSV, BrickLink wanted-list XML, Rebrickable CSV."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from image2lego.lego import partslist as P
from image2lego.lego.bricks import Brick, BrickModel
from image2lego.lego.catalogue import CATALOGUE
from image2lego.lego.colors import BRICKLINK_PALETTE, LDRAW_COLORS


def _model() -> BrickModel:
    b = [
        Brick(0, 0, 0, "3001", color=71),
        Brick(0, 2, 0, "3001", color=71),
        Brick(0, 0, 4, "3001", color=72),
        Brick(3, 0, 0, "3023", True, 15, 1),
        Brick(3, 0, 1, "3023", True, 15, 1),
        Brick(3, 0, 2, "3024", color=4, step=1),
        Brick(4, 0, 0, "2456", color=0, step=2),
    ]
    return BrickModel(b, (6, 4, 7))


def test_parts_csv_columns_counts_and_order():
    rows = list(csv.DictReader(io.StringIO(P.parts_csv(_model()))))
    assert list(rows[0]) == [
        "part", "description", "ldraw_color", "color_name", "availability", "count"
    ]  # fmt: skip
    got = [(r["part"], int(r["ldraw_color"]), int(r["count"])) for r in rows]
    assert got == [
        ("2456", 0, 1),
        ("3001", 71, 2),
        ("3001", 72, 1),
        ("3023", 15, 2),
        ("3024", 4, 1),
    ]
    r = rows[1]
    assert r["description"] == CATALOGUE["3001"].name and r["color_name"] == "Light Bluish Grey"


def test_bricklink_xml_uses_bricklink_colour_ids():
    root = ET.fromstring(P.bricklink_xml(_model()))
    assert root.tag == "INVENTORY"
    items = [
        (i.findtext("ITEMTYPE"), i.findtext("ITEMID"), int(i.findtext("COLOR")),
         int(i.findtext("MINQTY")))
        for i in root.findall("ITEM")
    ]  # fmt: skip
    assert items == [
        ("P", "2456", 11, 1),  # Black LDraw 0 → BrickLink 11
        ("P", "3001", 86, 2),  # Light Bluish Grey 71 → 86
        ("P", "3001", 85, 1),  # Dark Bluish Grey 72 → 85
        ("P", "3023", 1, 2),  # White 15 → 1
        ("P", "3024", 5, 1),  # Red 4 → 5
    ]


def test_rebrickable_csv():
    text = P.rebrickable_csv(_model())
    assert text.splitlines()[0] == "Part,Color,Quantity"
    rows = [tuple(r) for r in csv.reader(io.StringIO(text))][1:]
    assert ("3001", "71", "2") in rows and ("3023", "15", "2") in rows
    m = BrickModel([Brick(0, 0, 0, "3001", color=326)], (4, 2, 3))
    assert P.rebrickable_csv(m).splitlines()[1] == "3001,158,1"  # Yellowish Green exception


def test_unknown_colours_are_reported_not_guessed():
    unknown = next(c for c, v in sorted(LDRAW_COLORS.items()) if v.bricklink_id is None)
    m = BrickModel(
        [Brick(0, 0, 0, "3001", color=unknown), Brick(0, 2, 0, "3001", color=unknown),
         Brick(0, 0, 4, "3003", color=71)],
        (6, 4, 3),
    )  # fmt: skip
    assert P.unmapped_colors(m) == {unknown: 2}
    with pytest.raises(
        P.UnmappedColorError, match=rf"{unknown} {LDRAW_COLORS[unknown].name} \(2 parts\)"
    ):
        P.bricklink_xml(m)
    root = ET.fromstring(P.bricklink_xml(m, skip_unknown=True))
    assert [i.findtext("ITEMID") for i in root.findall("ITEM")] == ["3003"]
    # The CSV keeps every part (it uses LDraw colours).
    assert "3001" in P.parts_csv(m)


def test_bricklink_palette_models_always_export():
    m = BrickModel(
        [Brick(0, 0, 4 * i, "3001", color=c) for i, c in enumerate(BRICKLINK_PALETTE)],
        (4 * len(BRICKLINK_PALETTE), 2, 3),
    )
    root = ET.fromstring(P.bricklink_xml(m))
    assert len(root.findall("ITEM")) == len(BRICKLINK_PALETTE)


def test_bad_inputs():
    with pytest.raises(ValueError, match="16"):
        P.parts_csv(BrickModel([Brick(0, 0, 0, "3001", color=16)], (4, 2, 3)))
    with pytest.raises(ValueError, match="catalogue"):
        P.parts_csv(BrickModel([Brick(0, 0, 0, "9999")], (4, 2, 3)))
    with pytest.raises(ValueError, match="fmt"):
        P.write_parts(_model(), "x.txt", fmt="pdf")
    with pytest.raises(ValueError, match="service"):
        P.unmapped_colors(_model(), service="brickowl")


def test_empty_model():
    m = BrickModel([], (1, 1, 1))
    assert P.parts_csv(m) == "part,description,ldraw_color,color_name,availability,count\n"
    assert ET.fromstring(P.bricklink_xml(m)).findall("ITEM") == []
    assert P.rebrickable_csv(m) == "Part,Color,Quantity\n"


@pytest.mark.parametrize("fmt", ["csv", "bricklink", "rebrickable"])
def test_write_parts_atomic(tmp_path, fmt):
    p = P.write_parts(_model(), tmp_path / f"parts.{fmt}", fmt=fmt)
    assert p.read_text() == {
        "csv": P.parts_csv,
        "bricklink": P.bricklink_xml,
        "rebrickable": P.rebrickable_csv,
    }[fmt](_model())
    assert [x.name for x in tmp_path.iterdir()] == [p.name]


def test_write_parts_failure_leaves_no_file(tmp_path):
    unknown = next(c for c, v in sorted(LDRAW_COLORS.items()) if v.bricklink_id is None)
    m = BrickModel([Brick(0, 0, 0, "3001", color=unknown)], (4, 2, 3))
    with pytest.raises(P.UnmappedColorError):
        P.write_parts(m, tmp_path / "w.xml", fmt="bricklink")
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(sorted(CATALOGUE)), st.sampled_from(list(BRICKLINK_PALETTE))),
        max_size=40,
    )
)
def test_totals_match_brick_count(pairs):
    # Overlap does not matter for a parts list; stack bricks in a column.
    m = BrickModel([Brick(3 * i, 0, 0, p, color=c) for i, (p, c) in enumerate(pairs)], (10, 2, 200))
    csv_total = sum(int(r["count"]) for r in csv.DictReader(io.StringIO(P.parts_csv(m))))
    xml_total = sum(
        int(i.findtext("MINQTY")) for i in ET.fromstring(P.bricklink_xml(m)).iter("ITEM")
    )
    rb_total = sum(int(r["Quantity"]) for r in csv.DictReader(io.StringIO(P.rebrickable_csv(m))))
    assert csv_total == xml_total == rb_total == len(pairs)
    assert P.parts_csv(m) == P.parts_csv(BrickModel(list(reversed(m.bricks)), m.shape))

"""Real LEGO elements (issue 17 item 5): the table, the palette, splitting, recolouring and the
parts lists' rarity notes."""

from __future__ import annotations

import csv
import gzip
import io
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from image2lego.lego import elements as E
from image2lego.lego import partslist as P
from image2lego.lego.bricks import Brick, BrickModel
from image2lego.lego.catalogue import ALL_PARTS, CATALOGUE
from image2lego.lego.colors import BRICKLINK_PALETTE, LDRAW_COLORS
from image2lego.lego.connectivity import analyze
from image2lego.lego.convert import ConvertOptions, voxels_to_bricks

REPO = Path(__file__).resolve().parents[1]

# Colours the element table says lack many parts, the 1x1 plate among them: Medium Tan (no
# bricks at all), Salmon (only a 2x4 brick), Sand Red, Medium Green, Light Violet
SPARSE = (371, 12, 335, 74, 20)


def test_table_header_names_source_licence_and_date():
    t = E.table()
    assert "Rebrickable" in t.header and "rebrickable.com/downloads" in t.header
    assert "Licence" in t.header and "2026-02-26" in t.header
    assert t.year == 2026
    assert set(t.colours) <= set(LDRAW_COLORS)
    assert all(r.parts <= set(ALL_PARTS) for r in t.colours.values())


def test_table_facts():
    # every basic part exists in black, white and the bluish greys
    for code in (0, 15, 71, 72):
        assert set(CATALOGUE) <= E.table().parts_in(code)
    assert not E.available("3024", 371)  # Medium Tan has no 1x1 plate
    assert E.available("3023", 371)
    assert E.table().parts_in(12) == {"3001"}  # Salmon: only the 2x4 brick
    assert not E.available("3001", 216)  # Rust: no element id known at all
    assert not E.available("3001", 10**6)  # unknown colour


def test_element_palette_has_unit_parts_and_is_buyable():
    assert set(E.ELEMENT_PALETTE) <= set(BRICKLINK_PALETTE)
    for c in E.ELEMENT_PALETTE:
        assert E.available("3024", c) and E.available("3005", c)
    for c in SPARSE:  # a colour without a 1x1 plate is never offered for photo colours
        assert c not in E.ELEMENT_PALETTE
    assert {0, 1, 4, 14, 15, 19, 70, 71, 72} <= set(E.ELEMENT_PALETTE)


def test_rarity():
    assert E.rarity("3001", 4) == ""  # red: in production, ~90,000 sets
    assert E.rarity("3001", 7) == "retired colour (last set 2007)"  # old light grey
    assert "rare colour (" in E.rarity("3023", 371)  # Medium Tan: new, few sets
    assert E.rarity("3024", 371) == "not a LEGO element"


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(sorted(CATALOGUE)), st.sampled_from(sorted(E.table().colours)))
def test_split_footprint_covers_with_real_elements(pid, code):
    part = CATALOGUE[pid]
    nx, ny = part.length, part.width
    tiles = E.split_footprint(nx, ny, part.height, code)
    if E.available(pid, code):
        assert tiles == [(0, 0, nx, ny)]
    if not tiles:
        # nothing of that height tiles it in this colour: not even 1-wide rows
        return
    cover = np.zeros((nx, ny), dtype=int)
    for dx, dy, sx, sy in tiles:
        cover[dx : dx + sx, dy : dy + sy] += 1
        from image2lego.lego.catalogue import find

        p = find(sx, sy, part.height)
        assert p is not None and E.available(p.id, code)
    assert (cover == 1).all()


def _blob(seed: int, shape=(7, 6, 5)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    g = rng.random(shape) < 0.7
    g[:, :, 0] = True  # one piece on the floor
    return g


def _rgb_of(codes, shape, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pick = np.asarray(codes)[rng.integers(0, len(codes), shape)]
    return np.array([LDRAW_COLORS[int(c)].rgb for c in pick.ravel()]).reshape(shape + (3,))


@settings(max_examples=20, deadline=None)
@given(
    st.integers(0, 2**31 - 1),
    st.sampled_from(["mixed", "plates", "bricks"]),
    st.sampled_from(E.STRATEGIES),
)
def test_no_output_element_outside_the_table(seed, bricks, strategy):
    """Even from a palette of colours that lack most parts, every brick is a real element."""
    g = _blob(seed)
    palette = [4, *SPARSE]
    rgb = _rgb_of(palette, g.shape, seed)
    opts = ConvertOptions(
        color_mode="photo", k=6, palette=palette, brick_types=bricks, element_strategy=strategy
    )
    m = voxels_to_bricks(g, rgb, opts)
    assert E.unavailable(m) == {}
    assert all(E.available(b.part_id, b.color) for b in m.bricks)
    info = m.meta["elements"]
    assert info["strategy"] == strategy and info["unavailable_left"] == 0
    if strategy == "recolour":
        assert info["split"] == 0
    # the rule never costs a piece: as connected as the same model without it
    off = voxels_to_bricks(g, rgb, ConvertOptions(**{**vars(opts), "real_elements": False}))
    assert analyze(m).n_components <= analyze(off).n_components
    np.testing.assert_array_equal(m.occupancy(), off.occupancy())


def test_rule_off_keeps_unreal_elements():
    g = np.ones((4, 2, 1), dtype=bool)  # one 2x4 brick
    kw = {"scale": "paper", "brick_types": "bricks", "color_mode": "single", "color": 371}
    m = voxels_to_bricks(g, options=ConvertOptions(**kw, real_elements=False))
    assert [(b.part_id, b.color) for b in m.bricks] == [("3001", 371)]
    assert m.meta["elements"] is None
    on = voxels_to_bricks(g, options=ConvertOptions(**kw))
    assert E.unavailable(on) == {}
    # Medium Tan has no brick of any size: the 2x4 takes the nearest colour a 2x4 brick has
    assert on.meta["elements"]["recoloured"] == 1


def test_split_keeps_colour_where_smaller_parts_exist():
    # Bright Green (10) has 2x6 and 2x2 bricks, but no 2x8 brick (3007): two courses of 2x8
    # become 2x6 + 2x2 below and 2x2 + 2x6 above (seams apart: still one piece), colour kept
    g = np.ones((8, 2, 2), dtype=bool)
    kw = {"scale": "paper", "brick_types": "bricks", "color_mode": "single", "color": 10}
    assert not E.available("3007", 10)
    off = voxels_to_bricks(g, options=ConvertOptions(**kw, real_elements=False))
    assert [b.part_id for b in off.bricks] == ["3007", "3007"]
    m = voxels_to_bricks(g, options=ConvertOptions(**kw))
    assert E.unavailable(m) == {} and analyze(m).n_components == 1
    assert {b.color for b in m.bricks} == {10}
    assert sorted(b.part_id for b in m.bricks) == ["2456", "2456", "3003", "3003"]
    assert m.meta["elements"]["split"] == 2 and m.meta["elements"]["recoloured"] == 0
    rec = voxels_to_bricks(g, options=ConvertOptions(**kw, element_strategy="recolour"))
    assert [b.part_id for b in rec.bricks] == ["3007", "3007"]
    assert {b.color for b in rec.bricks} != {10} and E.unavailable(rec) == {}
    # one course alone cannot be split without falling apart: it is recoloured
    one = voxels_to_bricks(g[:, :, :1], options=ConvertOptions(**kw))
    assert [b.part_id for b in one.bricks] == ["3007"] and one.meta["elements"]["recoloured"] == 1


def test_recolour_model_moves_no_brick():
    m = BrickModel([Brick(0, 0, 0, "3001", color=371), Brick(3, 0, 0, "3024", color=4)], (4, 2, 4))
    out, n = E.recolour_model(m)
    assert n == 1 and E.unavailable(out) == {}
    assert [(b.x, b.y, b.z, b.part_id) for b in out.bricks] == [
        (b.x, b.y, b.z, b.part_id) for b in m.bricks
    ]
    assert E.recolour_model(out) == (out, 0)


def test_options_reject_bad_values():
    with pytest.raises(ValueError, match="element_strategy"):
        ConvertOptions(element_strategy="paint")
    with pytest.raises(ValueError, match="real_elements"):
        ConvertOptions(real_elements="yes")  # type: ignore[arg-type]


def test_parts_lists_mark_rare_elements():
    m = BrickModel([Brick(0, 0, 0, "3001", color=7), Brick(3, 0, 0, "3001", color=4)], (4, 2, 6))
    rows = list(csv.DictReader(io.StringIO(P.parts_csv(m))))
    assert {r["ldraw_color"]: r["availability"] for r in rows} == {
        "4": "",
        "7": "retired colour (last set 2007)",
    }
    items = ET.fromstring(P.bricklink_xml(m)).findall("ITEM")
    remarks = {i.findtext("COLOR"): i.findtext("REMARKS") for i in items}
    assert remarks == {"5": None, "9": "retired colour (last set 2007)"}
    assert P.rebrickable_csv(m).splitlines()[0] == "Part,Color,Quantity"


def test_rebrickable_numbers_the_round_plate_6141():
    m = BrickModel([Brick(0, 0, 0, "6141", color=4)], (1, 1, 1))
    assert P.rebrickable_csv(m).splitlines()[1] == "6141,4,1"
    assert "<ITEMID>4073</ITEMID>" in P.bricklink_xml(m)


def test_mosaic_default_palette_has_the_element():
    from image2lego.lego.mosaic import ELEMENTS, MosaicOptions, default_palette

    for name, pid in ELEMENTS.items():
        pal = default_palette(MosaicOptions(element=name))
        assert pal and all(E.available(pid, c) for c in pal)
    assert default_palette(MosaicOptions(real_elements=False)) == list(BRICKLINK_PALETTE)


def _write(path: Path, text: str, gz: bool) -> Path:
    data = text.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_generator_rebuilds_the_table(tmp_path, gz):
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import make_element_table as gen
    finally:
        sys.path.pop(0)
    el = _write(
        tmp_path / "elements.csv",
        "element_id,part_num,color_id,design_id\n"
        "300121,3001,4,3001\n300101,3001,15,\n302401,3024,15,\n"
        "999,3001pr0001,4,\n424242,3024,158,\n",
        gz,
    )
    cols = "id,name,rgb,is_trans,num_parts,num_sets,y1,y2\n" + "".join(
        f"{c.rebrickable_id},{c.name},000000,False,1,{10 + i},2000,2020\n"
        for i, c in enumerate(LDRAW_COLORS.values())
        if c.rebrickable_id is not None
    )
    co = _write(tmp_path / "colors.csv", cols, gz)
    out = tmp_path / "elements_table.csv"
    args = ["--elements", str(el), "--colors", str(co), "--out", str(out)]
    assert gen.main([*args, "--elements-date", "2030-01-02", "--colors-date", "2030-01-03"]) == 0
    t = E.table.__wrapped__(out)
    assert t.year == 2030 and "2030-01-02" in t.header
    assert t.parts_in(4) == {"3001"}  # the printed 3001pr0001 is another part
    assert t.parts_in(15) == {"3001", "3024"}
    assert t.parts_in(326) == {"3024"}  # LDraw 326 Yellowish Green is Rebrickable 158
    assert t.parts_in(0) == frozenset()
    with pytest.raises(SystemExit, match="dates"):
        gen.main([*args, "--elements-date", "today", "--colors-date", "2030-01-03"])


def test_shipped_table_is_what_the_generator_writes():
    """The header and columns are the generator's (nobody edited the table by hand)."""
    text = E.TABLE_PATH.read_text(encoding="utf-8")
    assert "Generated by tools/make_element_table.py" in text
    body = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert body[0] == "ldraw_code,rebrickable_id,name,sets,first_year,last_year,parts"
    codes = [int(r["ldraw_code"]) for r in csv.DictReader(body)]
    assert codes == sorted(c for c, v in LDRAW_COLORS.items() if v.rebrickable_id is not None)


def test_pipeline_recolours_what_repair_adds_and_cli_turns_the_rule_off():
    from image2lego.cli import build_parser
    from image2lego.core.pipeline import _real_elements

    m = BrickModel([Brick(0, 0, 0, "3024", color=371)], (1, 1, 1), {"elements": {"split": 0}})
    out = _real_elements(m)
    assert E.unavailable(out) == {} and out.meta["elements"] == {"split": 0, "repair_recoloured": 1}
    args = build_parser().parse_args(["x.npy", "--any-elements", "--element-strategy", "recolour"])
    from image2lego.cli import _options

    conv = _options(args).convert
    assert conv.real_elements is False and conv.element_strategy == "recolour"
    assert _options(build_parser().parse_args(["x.npy"])).convert.real_elements is True

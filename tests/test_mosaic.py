"""The 2D mosaic: sizes, colours, real parts, one rigid piece, LDraw/parts list, CLI, LeoCAD."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from image2lego.cli import main
from image2lego.lego import connectivity, ldraw, mosaic, partslist
from image2lego.lego.catalogue import CATALOGUE, part
from image2lego.lego.colors import LDRAW_COLORS
from image2lego.lego.errors import Image2LegoError


def _gradient(h=64, w=96) -> np.ndarray:
    """A smooth two-way colour ramp (red → blue across, dark → light down)."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([1 - x / (w - 1), 0.2 + 0.6 * y / (h - 1), x / (w - 1)], axis=-1)
    return np.clip(img, 0, 1)


def _stripes(h=48, w=48) -> np.ndarray:
    """Left half LEGO Red, right half LEGO Blue, a white bar along the top."""
    img = np.zeros((h, w, 3))
    img[:, : w // 2] = LDRAW_COLORS[4].rgb
    img[:, w // 2 :] = LDRAW_COLORS[1].rgb
    img[:6] = 1.0
    return img


def test_mosaic_parts_are_real_and_kept_out_of_the_voxel_catalogue():
    for pid in [*mosaic.ELEMENTS.values(), *mosaic.BASE_PLATES.values()]:
        assert part(pid).height == 1
        if pid != "3024":
            assert pid not in CATALOGUE  # the voxel merger must never choose a tile
    assert partslist.BRICKLINK_PART["6141"] == "4073"


def test_colours_follow_the_picture_and_the_layout_is_the_right_way_round():
    m = mosaic.make_mosaic(_stripes(), mosaic.MosaicOptions(16, 16, k=3))
    assert set(np.unique(m.codes)) == {4, 1, 15}
    assert m.codes[8, 2] == 4 and m.codes[8, 13] == 1 and m.codes[0, 8] == 15
    # row 0 of the picture is the back (largest y) of the lying model; x left → right
    top = {(b.x, b.y): b.color for b in m.model.bricks if b.z == 2}
    assert top[(2, 15)] == int(m.codes[0, 2]) and top[(13, 0)] == int(m.codes[15, 13])


@pytest.mark.parametrize("w,h", [(16, 16), (24, 40), (96, 48)])
def test_model_covers_every_stud_once_on_a_connected_two_layer_base(w, h):
    opts = mosaic.MosaicOptions(w, h, k=3, element="plate")
    m = mosaic.make_mosaic(_gradient(), opts)
    assert m.codes.shape == (h, w)
    occ = m.model.occupancy()
    assert occ.shape == (w, h, 3) and occ.all()  # no gap, and occupancy() raises no overlap
    pixels = [b for b in m.model.bricks if b.z == 2]
    assert len(pixels) == w * h and {b.part_id for b in pixels} == {"3024"}
    a = connectivity.analyze(m.model)
    assert a.connected and a.n_components == 1
    # steps: 2 base layers, then one per 16x16 section
    assert m.model.n_steps() == 2 + (-(-w // 16)) * (-(-h // 16))


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 12), st.integers(2, 12))
def test_base_layers_tile_exactly_and_every_top_seam_is_bridged(a, b):
    w, h = 8 * a, 8 * b
    for offset in (0, 4):
        cover = np.zeros((w, h), int)
        for br in mosaic.base_layer(w, h, 0, offset, 0):
            nx, ny = br.size
            cover[br.x : br.x + nx, br.y : br.y + ny] += 1
        assert (cover == 1).all()
    top = {b.x for b in mosaic.base_layer(w, h, 1, 0, 0)} | {w}
    bottom = {b.x for b in mosaic.base_layer(w, h, 0, 4, 0)} | {w}
    assert top & bottom == {0, w}  # no interior seam line shared by both layers


def test_at_most_k_colours_and_deterministic():
    img = _gradient()
    a = mosaic.make_mosaic(img, mosaic.MosaicOptions(32, 32, k=5, seed=3))
    b = mosaic.make_mosaic(img, mosaic.MosaicOptions(32, 32, k=5, seed=3))
    assert len(np.unique(a.codes)) <= 5
    assert (a.codes == b.codes).all()


def test_dithering_lowers_the_error_seen_from_a_distance():
    img = _gradient()
    plain = mosaic.make_mosaic(img, mosaic.MosaicOptions(48, 32, k=4))
    dith = mosaic.make_mosaic(img, mosaic.MosaicOptions(48, 32, k=4, dither=True))
    assert set(np.unique(dith.codes)) <= set(np.unique(plain.codes))
    assert dith.stats["delta_e_blur1"] < plain.stats["delta_e_blur1"] - 1.0
    # more colours → a closer picture
    rich = mosaic.make_mosaic(img, mosaic.MosaicOptions(48, 32, k=12))
    assert rich.stats["delta_e"] < plain.stats["delta_e"]


def test_palette_and_crop():
    m = mosaic.make_mosaic(_gradient(), mosaic.MosaicOptions(16, 32, k=4, palette=[0, 15, 4]))
    assert set(np.unique(m.codes)) <= {0, 15, 4}
    assert mosaic.fit_image(_gradient(64, 96), 16, 32, "crop").shape == (32, 16, 3)
    # crop keeps the centre: a 16x32 portrait of a 96-wide ramp spans only its middle third
    t = mosaic.fit_image(_gradient(64, 96), 16, 32, "crop")
    assert 0.25 < t[0, 0, 2] and t[0, -1, 2] < 0.75


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        ({"width": 20}, "multiple of 8"),
        ({"height": 104}, "multiple of 8"),
        ({"k": 0}, "k must be"),
        ({"element": "brick"}, "element must be"),
        ({"base_color": 9999}, "base colour"),
        ({"palette": [9999]}, "palette"),
    ],
)
def test_bad_options_are_clear_errors(kwargs, msg):
    with pytest.raises(Image2LegoError, match=msg):
        mosaic.make_mosaic(_gradient(), mosaic.MosaicOptions(**kwargs))


def test_bad_images_are_clear_errors():
    assert issubclass(mosaic.MosaicError, ValueError)  # old except clauses keep working
    with pytest.raises(Image2LegoError, match="shape"):
        mosaic.make_mosaic(np.zeros((4, 4, 2)))
    with pytest.raises(Image2LegoError, match="0..1"):
        mosaic.make_mosaic(np.full((8, 8, 3), 2.0))


def test_ldraw_round_trip_and_parts_list():
    m = mosaic.make_mosaic(_gradient(), mosaic.MosaicOptions(16, 24, k=3, element="round_plate"))
    back = ldraw.parse_ldr(ldraw.to_ldr(m.model))
    assert sorted(back.bricks) == sorted(m.model.bricks)
    rows = partslist.parts_csv(m.model).splitlines()[1:]
    counts = {}
    for r in rows:
        pid, *_, n = r.split(",")
        counts[pid] = counts.get(pid, 0) + int(n)
    assert counts["6141"] == 16 * 24
    assert "<ITEMID>4073</ITEMID>" in partslist.bricklink_xml(m.model)


def test_render_draws_each_stud_in_its_colour():
    codes = np.array([[4, 1], [15, 0]])
    img = mosaic.render(codes, "tile", cell=10, base_color=0)
    assert img.shape == (20, 20, 3)
    red = np.rint(np.array(LDRAW_COLORS[4].rgb) * 255)
    assert (img[5, 5] == red).all()
    partial = mosaic.render(codes, "tile", cell=10, upto=0)
    assert not (partial[5, 5] == red).all()


def test_cli_mosaic_writes_everything(tmp_path):
    from PIL import Image

    src = tmp_path / "photo.png"
    Image.fromarray((_gradient() * 255).astype(np.uint8)).save(src)
    out = tmp_path / "out"
    rc = main(["mosaic", str(src), "-o", str(out), "--width", "16", "--height", "16", "-q"])
    assert rc == 0
    for name in ("mosaic.ldr", "mosaic.mpd", "parts.csv", "bricklink.xml", "rebrickable.csv",
                 "mosaic.png", "target.png", "instructions.html", "instructions.pdf"):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "report.json").read_text())
    assert report["studs"] == 256 and report["colors"] <= 8 and report["steps"] == 3
    assert len(ldraw.parse_ldr(out / "mosaic.ldr")) == report["bricks"]
    assert len(list((out / "instructions_images").glob("step_*.png"))) == 3


def test_cli_mosaic_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["mosaic", str(tmp_path / "missing.png"), "-o", str(out)]) == 2
    assert main(["mosaic", str(tmp_path / "x.png"), "-o", str(out), "--width", "50"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("image2lego mosaic: error:") for e in err)
    assert "multiple of 8" in err[1]
    assert not out.exists()


@pytest.mark.data
@pytest.mark.parametrize("element", ["plate", "tile"])
def test_leocad_builds_the_mosaic_exactly(tmp_path, ldraw_library, element):
    from .test_leocad import expected_boxes, obj_pieces, run_leocad

    if not (shutil.which("leocad") and shutil.which("xvfb-run")):
        pytest.skip("leocad and xvfb-run are not installed")
    m = mosaic.make_mosaic(_gradient(), mosaic.MosaicOptions(16, 16, k=3, element=element))
    for b in m.model.bricks:  # the library subset really has every part we use
        assert (ldraw_library / "parts" / b.part.filename).is_file(), b.part_id
    path = ldraw.write_ldr(m.model, tmp_path / "mosaic.ldr")
    run_leocad(ldraw_library, path, "-obj", str(tmp_path / "mosaic.obj"))
    pieces = obj_pieces(tmp_path / "mosaic.obj")
    assert len(pieces) == len(m.model)
    boxes = sorted(box for _, box, _ in pieces)
    want = sorted(tuple(round(float(c), 1) for c in box) for _, box in expected_boxes(m.model))
    if element == "tile":  # a tile has no stud: LeoCAD's box is 4 LDU lower than a plate's
        want = [(*w[:5], w[5] - 4.0) if w[2] == 16.0 else w for w in want]
    assert boxes == want


# --------------------------------------------------------------------------- standing


def _front_colours(model) -> dict[tuple[int, int], int]:
    """(x, course) → colour of the brick at the wall's front (y = 0), course 0 = the foot."""
    out = {}
    for b in model.bricks:
        if b.y != 0:
            continue
        for x, _ in b.cells():
            for z in range(b.z, b.z + b.height):
                out[(x, z // 3)] = b.color
    return out


def test_standing_mosaic_is_one_upright_wall_on_a_foot_showing_the_picture():
    from image2lego.lego.stability import fully_supported

    opts = mosaic.MosaicOptions(16, 24, k=3, orientation="standing", base_color=0)
    m = mosaic.make_mosaic(_stripes(), opts)
    rows = mosaic.standing_rows(24)
    assert rows == 20 and m.codes.shape == (20, 16)  # a 1x1 brick is 1.2 studs tall
    occ = m.model.occupancy()
    assert occ.shape == (16, mosaic.STAND_FOOT, 3 * (rows + 1))
    assert occ[:, :, :3].all()  # the foot: the whole footprint on the ground
    assert occ[:, : mosaic.STAND_DEPTH, 3:].all() and not occ[:, mosaic.STAND_DEPTH :, 3:].any()
    a = connectivity.analyze(m.model)
    assert a.connected and a.n_components == 1
    assert fully_supported(m.model)  # nothing overhangs: it stands
    assert {b.part_id for b in m.model.bricks} <= set(CATALOGUE)  # real bricks
    # the front shows the picture (row 0 at the top), up to the cells recoloured for bonding
    front = _front_colours(m.model)
    wrong = sum(front[(x, rows - r)] != int(m.codes[r, x]) for r in range(rows) for x in range(16))
    assert wrong <= m.stats["recoloured_cells"] and wrong <= 0.1 * m.codes.size
    assert front[(2, rows)] == m.codes[0, 2] and front[(2, 1)] == m.codes[-1, 2]
    assert m.codes[0, 2] != m.codes[-1, 2]  # the white bar on top, red below


def test_cli_mosaic_standing_writes_everything(tmp_path):
    from PIL import Image

    src = tmp_path / "photo.png"
    Image.fromarray((_gradient() * 255).astype(np.uint8)).save(src)
    out = tmp_path / "out"
    argv = ["mosaic", str(src), "-o", str(out), "--width", "16", "--height", "16", "--standing"]
    assert main(argv + ["-q", "-k", "4"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["orientation"] == "standing" and report["connected"]
    model = ldraw.parse_ldr(out / "mosaic.ldr")
    assert len(model) == report["bricks"]
    pages = sorted((out / "instructions_images").glob("step_*.png"))
    assert len(pages) == report["steps"] == model.n_steps()
    pic = Image.open(out / "mosaic.png")
    assert pic.size == (16 * 16, round(mosaic.standing_rows(16) * 16 * 1.2))
    with pytest.raises(Image2LegoError, match="orientation must be one of"):
        mosaic.MosaicOptions(orientation="sideways").validate()


@pytest.mark.data
def test_leocad_builds_the_standing_mosaic_exactly(tmp_path, ldraw_library):
    from .test_leocad import expected_boxes, obj_pieces, run_leocad

    if not (shutil.which("leocad") and shutil.which("xvfb-run")):
        pytest.skip("leocad and xvfb-run are not installed")
    opts = mosaic.MosaicOptions(16, 16, k=3, orientation="standing")
    m = mosaic.make_mosaic(_gradient(), opts)
    path = ldraw.write_ldr(m.model, tmp_path / "wall.ldr")
    run_leocad(ldraw_library, path, "-obj", str(tmp_path / "wall.obj"))
    pieces = obj_pieces(tmp_path / "wall.obj")
    assert len(pieces) == len(m.model)
    boxes = sorted(box for _, box, _ in pieces)
    assert boxes == sorted(tuple(round(float(c), 1) for c in b) for _, b in expected_boxes(m.model))


def test_cli_mosaic_is_all_or_nothing_and_ends_with_a_short_summary(tmp_path, monkeypatch, capsys):
    """A second run that fails part-way (here: in the booklet, after LDraw, parts lists and
    pictures were written) leaves the first run's folder byte-identical; a run ends with the
    short summary, not the whole report."""
    from PIL import Image

    from image2lego import mosaic_cli

    src = tmp_path / "photo.png"
    Image.fromarray((_gradient() * 255).astype(np.uint8)).save(src)
    out = tmp_path / "out"
    assert main(["mosaic", str(src), "-o", str(out), "--width", "16", "--height", "16"]) == 0
    said = capsys.readouterr().out.splitlines()
    assert len(said) <= 15 and said[0].startswith("Built ") and " bricks (" in said[0]
    assert not any(line.lstrip().startswith('"') for line in said)  # no JSON dump
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def broken(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mosaic_cli, "write_instructions", broken)
    argv = ["mosaic", str(src), "-o", str(out), "--width", "24", "--height", "24", "-k", "3"]
    assert main(argv) == 2
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before

"""LDraw .ldr/.mpd export and the round-trip parser."""

from __future__ import annotations

import random
import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from image2lego.lego import ldraw
from image2lego.lego.bricks import Brick, BrickModel
from image2lego.lego.catalogue import ALL_PARTS, CATALOGUE
from image2lego.lego.units import PLATE_LDU, STUD_LDU

PART_IDS = sorted(CATALOGUE)
COLOURS = [0, 1, 4, 14, 15, 19, 70, 71, 72, 320]


def _non_overlapping(cands, shape=(10, 10, 12)) -> BrickModel:
    occ = np.zeros(shape, dtype=bool)
    kept = []
    for b in cands:
        nx, ny = b.size
        if b.x + nx > shape[0] or b.y + ny > shape[1] or b.z + b.height > shape[2]:
            continue
        sl = (slice(b.x, b.x + nx), slice(b.y, b.y + ny), slice(b.z, b.z + b.height))
        if occ[sl].any():
            continue
        occ[sl] = True
        kept.append(b)
    return BrickModel(kept, shape)


brick_st = st.builds(
    Brick,
    z=st.integers(0, 11),
    y=st.integers(0, 9),
    x=st.integers(0, 9),
    part_id=st.sampled_from(PART_IDS),
    rotated=st.booleans(),
    color=st.sampled_from(COLOURS),
    step=st.integers(0, 4),
)
model_st = st.lists(brick_st, min_size=0, max_size=25).map(_non_overlapping)


def _same(a: BrickModel, b: BrickModel):
    assert sorted(a.bricks) == sorted(b.bricks)
    assert tuple(a.shape) == tuple(b.shape)
    assert np.array_equal(a.occupancy(), b.occupancy())
    assert a.n_steps() == b.n_steps()


@settings(max_examples=60, deadline=None)
@given(model_st)
def test_ldr_round_trip(m):
    _same(m, ldraw.parse_ldr(ldraw.to_ldr(m, title="Round trip")))


@settings(max_examples=40, deadline=None)
@given(model_st)
def test_mpd_round_trip(m):
    _same(m, ldraw.parse_ldr(ldraw.to_mpd(m, title="Round trip")))


@settings(max_examples=30, deadline=None)
@given(model_st, st.randoms(use_true_random=False))
def test_output_is_deterministic_and_order_independent(m, rnd):
    shuffled = BrickModel(list(m.bricks), m.shape)
    rnd.shuffle(shuffled.bricks)
    assert ldraw.to_ldr(m, title="T").encode() == ldraw.to_ldr(shuffled, title="T").encode()
    assert ldraw.to_mpd(m, title="T").encode() == ldraw.to_mpd(shuffled, title="T").encode()


@settings(max_examples=30, deadline=None)
@given(model_st)
def test_step_count_and_header(m):
    text = ldraw.to_ldr(m, title="My model", author="Tester", name="my.ldr")
    lines = text.split("\r\n")
    assert lines[:4] == [
        "0 My model",
        "0 Name: my.ldr",
        "0 Author: Tester",
        "0 !LDRAW_ORG Unofficial_Model",
    ]
    assert lines.count("0 STEP") == m.n_steps()
    assert sum(line.startswith("1 ") for line in lines) == len(m)
    assert "\n" not in text.replace("\r\n", "")  # CR LF only, no bare LF
    # A brick's step is the number of STEP lines before it.
    steps_seen = 0
    per_step: dict[int, int] = {}
    for line in lines:
        if line == "0 STEP":
            steps_seen += 1
        elif line.startswith("1 "):
            per_step[steps_seen] = per_step.get(steps_seen, 0) + 1
    expected: dict[int, int] = {}
    for b in m.bricks:
        expected[b.step] = expected.get(b.step, 0) + 1
    assert per_step == expected


def test_known_positions_and_matrices():
    """Hand-computed LDraw lines (origin = top-face centre, −Y up, Z = our y)."""
    a = Brick(0, 0, 0, "3001", False, 4, 0)  # 2x4 brick, long side along x
    b = Brick(0, 0, 4, "3001", True, 1, 0)  # turned: 2 studs along x, 4 along y
    c = Brick(3, 1, 2, "3023", True, 15, 1)  # 1x2 plate on top of the bricks
    assert ldraw.brick_line(a) == "1 4 40 -24 20 1 0 0 0 1 0 0 0 1 3001.dat"
    assert ldraw.brick_line(b) == "1 1 100 -24 40 0 0 1 0 1 0 -1 0 0 3001.dat"
    assert ldraw.brick_line(c) == "1 15 50 -32 40 0 0 1 0 1 0 -1 0 0 3023.dat"
    # Half-stud centres stay exact: a 1x1 at x=0 is centred on 10 LDU.
    assert ldraw.brick_line(Brick(0, 0, 0, "3005")).startswith(f"1 71 {STUD_LDU // 2} ")


@pytest.mark.parametrize("m", [ldraw.IDENTITY, ldraw.ROT_Y90, ldraw.LATTICE_TO_LDRAW])
def test_rotations_are_proper(m):
    m = np.asarray(m, dtype=float)
    assert np.allclose(m @ m.T, np.eye(3))
    assert np.isclose(np.linalg.det(m), 1.0)


def test_rot_y90_puts_long_side_along_ldraw_z():
    long_axis = np.asarray(ldraw.ROT_Y90) @ np.array([1, 0, 0])
    assert abs(long_axis[2]) == 1 and long_axis[0] == 0 and long_axis[1] == 0


@settings(max_examples=40, deadline=None)
@given(model_st)
def test_positions_cover_the_same_ldu_boxes(m):
    """Independent check of the frame: each line's part box (LDraw) maps back to its cells."""
    text = ldraw.to_ldr(m)
    bricks = sorted(m.bricks, key=lambda b: (b.step, b.z, b.y, b.x, b.part_id, b.rotated, b.color))
    lines = [line for line in text.split("\r\n") if line.startswith("1 ")]
    for b, line in zip(bricks, lines, strict=True):
        t = line.split()
        X, Y, Z = (float(v) for v in t[2:5])
        rot = np.array([float(v) for v in t[5:14]]).reshape(3, 3)
        p = CATALOGUE[t[14].removesuffix(".dat")]
        half = np.abs(rot) @ np.array([p.length * STUD_LDU / 2, 0, p.width * STUD_LDU / 2])
        # Box in LDraw: X±half, Y from top (origin) down to +height, Z±half.
        x0, x1 = X - half[0], X + half[0]
        z0, z1 = Z - half[2], Z + half[2]
        y_top, y_bot = Y, Y + p.height * PLATE_LDU
        nx, ny = b.size
        assert (x0, x1) == (b.x * STUD_LDU, (b.x + nx) * STUD_LDU)
        assert (z0, z1) == (b.y * STUD_LDU, (b.y + ny) * STUD_LDU)
        assert (-y_bot, -y_top) == (b.z * PLATE_LDU, b.top * PLATE_LDU)
        assert int(t[1]) == b.color


def test_mpd_structure():
    m = BrickModel(
        [Brick(0, 0, 0, "3001", color=4, step=0), Brick(3, 0, 0, "3001", color=1, step=1)],
        (4, 2, 6),
    )
    text = ldraw.to_mpd(m, title="Two", name="two.mpd")
    lines = text.split("\r\n")
    files = [line[len("0 FILE ") :] for line in lines if line.startswith("0 FILE ")]
    assert files == ["two.ldr", "two-step001.ldr", "two-step002.ldr"]
    assert lines.count("0 NOFILE") == 3
    main = lines[: lines.index("0 NOFILE")]
    assert main.count("0 STEP") == 2
    refs = [line.split()[-1] for line in main if line.startswith("1 ")]
    assert refs == files[1:]
    assert "0 !LDRAW_ORG Unofficial_Model" in main and "0 Name: two.ldr" in main


def test_write_files_atomic_and_named(tmp_path):
    m = BrickModel([Brick(0, 0, 0, "3003", color=14)], (2, 2, 3))
    p = ldraw.write_ldr(m, tmp_path / "duck.ldr", title="Duck")
    q = ldraw.write_mpd(m, tmp_path / "duck.mpd", title="Duck")
    assert "0 Name: duck.ldr" in p.read_text()
    assert "0 FILE duck.ldr" in q.read_text() and "duck-step001.ldr" in q.read_text()
    _same(m, ldraw.parse_ldr(p))
    _same(m, ldraw.parse_ldr(str(q)))
    # A failing export leaves the existing file untouched and no temporary files behind.
    bad = BrickModel([Brick(0, 0, 0, "3003", color=9999)], (2, 2, 3))
    before = p.read_bytes()
    with pytest.raises(ValueError, match="9999"):
        ldraw.write_ldr(bad, p)
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["duck.ldr", "duck.mpd"]


def test_empty_model_round_trips():
    m = BrickModel([], (3, 3, 3))
    text = ldraw.to_ldr(m)
    assert "0 STEP" not in text
    _same(m, ldraw.parse_ldr(text))


@pytest.mark.parametrize(
    "brick, msg",
    [
        (Brick(0, 0, 0, "3001", color=16), "colour 16"),
        (Brick(0, 0, 0, "3001", color=47), "colour 47"),
        (Brick(0, 0, 0, "9999"), "9999"),
        (Brick(0, 0, 0, "3001", step=-1), "negative build step"),
    ],
)
def test_writer_rejects_bad_bricks(brick, msg):
    with pytest.raises(ValueError, match=msg):
        ldraw.to_ldr(BrickModel([brick], (4, 4, 3)))


def test_writer_rejects_multiline_title():
    with pytest.raises(ValueError, match="single line"):
        ldraw.to_ldr(BrickModel([], (1, 1, 1)), title="a\nb")


GOOD = "0 T\r\n0 Name: t.ldr\r\n1 4 40 -24 20 1 0 0 0 1 0 0 0 1 3001.dat\r\n0 STEP\r\n"


@pytest.mark.parametrize(
    "line, msg",
    [
        ("1 4 40 -24 20 1 0 0 0 1 0 0 0 1 4589.dat", r"line 3|:3: unknown part '4589.dat'"),
        ("1 4 40 -24 20 1 0 0 0 1 0 0 0 1 3001", "unknown part"),
        ("hello world", ":3: cannot parse line"),
        ("2 24 0 0 0 1 1 1", ":3: geometry line"),
        ("1 4 40 -24 20 1 0 0 0 1 0 0 0 1", ":3: cannot parse"),
        ("1 x 40 -24 20 1 0 0 0 1 0 0 0 1 3001.dat", ":3: malformed numbers"),
        ("1 47 40 -24 20 1 0 0 0 1 0 0 0 1 3001.dat", ":3: colour 47"),
        ("1 16 40 -24 20 1 0 0 0 1 0 0 0 1 3001.dat", ":3: colour 16"),
        ("1 4 45 -24 20 1 0 0 0 1 0 0 0 1 3001.dat", ":3: .*not on the LEGO lattice"),
        ("1 4 40 -20 20 1 0 0 0 1 0 0 0 1 3001.dat", ":3: .*not on the LEGO lattice"),
        ("1 4 40 -24 20 -1 0 0 0 1 0 0 0 1 3001.dat", ":3: .*not a proper rotation"),
        ("1 4 40 -24 20 2 0 0 0 1 0 0 0 1 3001.dat", ":3: .*not a proper rotation"),
        ("1 4 40 -24 20 1 0 0 0 0 -1 0 1 0 3001.dat", ":3: .*tilted"),
        ("1 4 0 -24 20 1 0 0 0 1 0 0 0 1 3001.dat", ":3: .*outside the lattice"),
    ],
)
def test_parser_errors_name_the_line(line, msg):
    text = GOOD.replace("1 4 40 -24 20 1 0 0 0 1 0 0 0 1 3001.dat", line)
    with pytest.raises(ldraw.LDrawError, match=msg):
        ldraw.parse_ldr(text)


def test_parser_accepts_half_turn_and_backslash_paths():
    text = "0 T\n1 4 40 -24 20 -1 0 0 0 1 0 0 0 -1 parts\\3001.dat\n"
    m = ldraw.parse_ldr(text)
    assert m.bricks == [Brick(0, 0, 0, "3001", False, 4, 0)]
    text = "0 T\n1 4 40 -24 40 0 0 -1 0 1 0 1 0 0 3001.DAT\n"
    assert ldraw.parse_ldr(text).bricks == [Brick(0, 0, 1, "3001", True, 4, 0)]


def test_parser_mpd_errors():
    with pytest.raises(ldraw.LDrawError, match="defined twice"):
        ldraw.parse_ldr("0 FILE a.ldr\n0 NOFILE\n0 FILE a.ldr\n0 NOFILE\n")
    with pytest.raises(ldraw.LDrawError, match="outside any '0 FILE'"):
        ldraw.parse_ldr("1 4 40 -24 20 1 0 0 0 1 0 0 0 1 3001.dat\n0 FILE a.ldr\n0 NOFILE\n")
    ref = "1 16 0 0 0 1 0 0 0 1 0 0 0 1"
    cyc = f"0 FILE a.ldr\n{ref} b.ldr\n0 FILE b.ldr\n{ref} a.ldr\n"
    with pytest.raises(ldraw.LDrawError, match="nesting"):
        ldraw.parse_ldr(cyc)


def test_parser_rejects_shape_smaller_than_bricks():
    text = "0 T\n0 !IMAGE2LEGO SHAPE 1 1 1\n1 4 40 -24 20 1 0 0 0 1 0 0 0 1 3001.dat\n"
    with pytest.raises(ldraw.LDrawError, match="smaller than"):
        ldraw.parse_ldr(text)


def test_parser_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.ldr"):
        ldraw.parse_ldr(str(tmp_path / "nope.ldr"))


def test_parse_keeps_title_and_infers_shape_without_meta():
    m = ldraw.parse_ldr("0 Castle\n0 Name: c.ldr\n1 4 40 -24 20 1 0 0 0 1 0 0 0 1 3001.dat\n")
    assert m.meta["title"] == "Castle"
    assert m.shape == (4, 2, 3)


def test_large_model_round_trips():
    rnd = random.Random(0)
    cands = [
        Brick(rnd.randrange(60), rnd.randrange(30), rnd.randrange(30), rnd.choice(PART_IDS),
              rnd.random() < 0.5, rnd.choice(COLOURS), rnd.randrange(20))
        for _ in range(4000)
    ]  # fmt: skip
    m = _non_overlapping(cands, (32, 32, 64))
    assert len(m) > 500
    _same(m, ldraw.parse_ldr(ldraw.to_ldr(m)))
    assert re.search(r"^0 !IMAGE2LEGO SHAPE 32 32 64\r$", ldraw.to_ldr(m), re.M)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(ALL_PARTS)),
    st.booleans(),
    st.integers(0, 300),
    st.integers(0, 300),
    st.integers(0, 900),
)
def test_brick_line_writes_the_exact_transform(part_id, rotated, x, y, z):
    """The integer fast path of brick_line writes brick_transform's exact numbers."""
    b = Brick(z=z, y=y, x=x, part_id=part_id, rotated=rotated, color=4)
    (X, Y, Z), m = ldraw.brick_transform(b)
    fields = ldraw.brick_line(b).split()
    assert [Fraction(v) for v in fields[2:5]] == [X, Y, Z]
    assert [int(v) for v in fields[5:14]] == [v for row in m for v in row]
    assert fields[14] == ALL_PARTS[part_id].filename

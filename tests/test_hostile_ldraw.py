"""Hostile LDraw input ends quickly with an LDrawError (issue #22): no hang, no blow-up."""

from __future__ import annotations

import pytest

from image2lego.lego import ldraw
from image2lego.lego.bricks import Brick, BrickModel

LINE = "1 4 40 -24 20 1 0 0 0 1 0 0 0 1 3001.dat"


@pytest.mark.parametrize(
    "tok", ["1e999999999", "1e400", "nan", "inf", "-inf", "0x10", "1_000", "1" * 50, "1e8"]
)
def test_unbounded_numbers_are_refused(tok):
    with pytest.raises(ldraw.LDrawError, match="malformed numbers"):
        ldraw.parse_ldr(f"0 T\n1 4 {tok} -24 20 1 0 0 0 1 0 0 0 1 3001.dat\n")


def test_huge_colour_number_is_refused():
    with pytest.raises(ldraw.LDrawError, match="malformed numbers"):
        ldraw.parse_ldr(f"0 T\n1 {'9' * 5000} 40 -24 20 1 0 0 0 1 0 0 0 1 3001.dat\n")


def test_breadth_bomb_is_counted_before_expanding():
    # 17 submodels each referencing the next 4 times: 4**16 bricks if expanded
    ref = "1 16 0 0 0 1 0 0 0 1 0 0 0 1"
    text = ""
    for i in range(17):
        body = "\n".join([f"{ref} s{i + 1}.ldr"] * 4) if i < 16 else LINE
        text += f"0 FILE s{i}.ldr\n{body}\n0 NOFILE\n"
    with pytest.raises(ldraw.LDrawError, match="expands to more than"):
        ldraw.parse_ldr(text)


def test_expansion_limit_is_a_parameter():
    ref = "1 16 0 0 0 1 0 0 0 1 0 0 0 1"
    text = f"0 FILE a.ldr\n{ref} b.ldr\n{ref} b.ldr\n0 NOFILE\n0 FILE b.ldr\n{LINE}\n0 NOFILE\n"
    assert len(ldraw.parse_ldr(text).bricks) == 2
    with pytest.raises(ldraw.LDrawError, match="more than 1 bricks"):
        ldraw.parse_ldr(text, max_bricks=1)


def test_reference_cycle_and_self_reference():
    ref = "1 16 0 0 0 1 0 0 0 1 0 0 0 1"
    with pytest.raises(ldraw.LDrawError, match="loops back.*a.ldr"):
        ldraw.parse_ldr(f"0 FILE a.ldr\n{ref} a.ldr\n0 NOFILE\n")


def test_deep_chain_is_refused():
    ref = "1 16 0 0 0 1 0 0 0 1 0 0 0 1"
    n = ldraw.MAX_DEPTH + 5
    text = "".join(f"0 FILE s{i}.ldr\n{ref} s{i + 1}.ldr\n0 NOFILE\n" for i in range(n))
    text += f"0 FILE s{n}.ldr\n{LINE}\n0 NOFILE\n"
    with pytest.raises(ldraw.LDrawError, match="deeper than"):
        ldraw.parse_ldr(text)


def test_rotated_submodel_reference_composes():
    # a submodel turned 90° about Y: the brick inside comes out rotated
    ref = "1 16 0 0 80 0 0 1 0 1 0 -1 0 0"
    inner = "1 4 20 -24 40 1 0 0 0 1 0 0 0 1 3001.dat"
    text = f"0 FILE a.ldr\n{ref} b.ldr\n0 NOFILE\n0 FILE b.ldr\n{inner}\n0 NOFILE\n"
    (b,) = ldraw.parse_ldr(text).bricks
    assert b.rotated and (b.x, b.y, b.z) == (1, 1, 0)
    tilted = "1 16 0 0 0 0.70710678 0 0.70710678 0 1 0 -0.70710678 0 0.70710678"
    with pytest.raises(ldraw.LDrawError, match="submodel reference is tilted"):
        ldraw.parse_ldr(text.replace(ref, tilted))


def test_size_limit_is_checked_before_reading(tmp_path):
    p = tmp_path / "big.ldr"
    with open(p, "wb") as f:
        f.truncate(ldraw.MAX_LDRAW_BYTES + 1)  # sparse: nothing to read
    with pytest.raises(ldraw.LDrawError, match="byte limit"):
        ldraw.parse_ldr(p)
    with pytest.raises(ldraw.LDrawError, match="byte limit"):
        ldraw.parse_ldr("0 T\n" + LINE * 10, max_bytes=100)


def test_binary_and_non_utf8_and_directory(tmp_path):
    p = tmp_path / "x.ldr"
    p.write_bytes(b"0 T\n\0\0\0")
    with pytest.raises(ldraw.LDrawError, match="NUL"):
        ldraw.parse_ldr(p)
    p.write_bytes(b"0 T\n\xff\xfe\xfa")
    with pytest.raises(ldraw.LDrawError, match="UTF-8"):
        ldraw.parse_ldr(p)
    d = tmp_path / "d.ldr"
    d.mkdir()
    with pytest.raises(ldraw.LDrawError, match="not a regular file"):
        ldraw.parse_ldr(d)
    with pytest.raises(TypeError, match="path or the file's text"):
        ldraw.parse_ldr(42)


def test_many_lines_parse_linearly():
    # 20,000 valid bricks parse in well under a second (was 1.7 ms a line with Fractions)
    lines = [
        f"1 4 {40 + 40 * (i % 100)} -24 {20 + 40 * (i // 100)} 1 0 0 0 1 0 0 0 1 3001.dat"
        for i in range(20_000)
    ]
    m = ldraw.parse_ldr("0 T\n" + "\n".join(lines) + "\n")
    assert len(m.bricks) == 20_000
    assert m.shape == (4 + 2 * 99, 2 + 2 * 199, 3)  # 2x4 bricks at 2-stud pitch: x 0..198


def test_empty_submodel_breadth_bomb_is_counted():
    # 4**16 references to empty submodels expand to no brick, but walking them would hang
    ref = "1 16 0 0 0 1 0 0 0 1 0 0 0 1"
    text = ""
    for i in range(17):
        body = "\n".join([f"{ref} s{i + 1}.ldr"] * 4) if i < 16 else "0 nothing here"
        text += f"0 FILE s{i}.ldr\n{body}\n0 NOFILE\n"
    with pytest.raises(ldraw.LDrawError, match="more than 2000000 submodel references"):
        ldraw.parse_ldr(text)


@pytest.mark.parametrize("indent", ["", "  "])  # counted up front / while reading
def test_plain_file_over_the_brick_limit_is_refused(indent):
    text = "0 T\n" + "\n".join([indent + LINE] * 30) + "\n"
    with pytest.raises(ldraw.LDrawError, match="has more than 20 bricks"):
        ldraw.parse_ldr(text, max_bricks=20)
    assert len(ldraw.parse_ldr(text, max_bricks=30).bricks) == 30


def test_broken_submodel_that_nothing_references_is_ignored():
    ref = "1 16 0 0 0 1 0 0 0 1 0 0 0 1"
    text = (
        f"0 FILE a.ldr\n{ref} b.ldr\n0 NOFILE\n0 FILE b.ldr\n{LINE}\n0 NOFILE\n"
        "0 FILE junk.ldr\nhello world\n1 4 1-2 -24 20 1 0 0 0 1 0 0 0 1 3001.dat\n0 NOFILE\n"
    )
    assert len(ldraw.parse_ldr(text).bricks) == 1
    with pytest.raises(ldraw.LDrawError, match=":8: cannot parse line"):
        ldraw.parse_ldr(text.replace(f"{ref} b.ldr", f"{ref} junk.ldr"))


@pytest.mark.parametrize(
    "tok", ["1-2", "1.2.3", "-", ".", "--40", "40-", "4e", "0x28"]
)  # fmt: skip
def test_tokens_numpy_would_misread_are_refused(tok):
    # the vectorised reader hands any token numpy cannot consume exactly to the line parser
    lines = [LINE] * 5 + [LINE.replace(" 40 ", f" {tok} ", 1)] + [LINE] * 5
    with pytest.raises(ldraw.LDrawError, match=r":7: malformed numbers"):
        ldraw.parse_ldr("0 T\n" + "\n".join(lines) + "\n")


def test_every_spelling_of_a_line_gives_the_same_brick():
    # the fast path (plain decimals, spaces or tabs) and the per-line parser (signs,
    # exponents, other whitespace, names with spaces are not parts) agree
    want = ldraw.parse_ldr(f"0 T\n{LINE}\n").bricks
    for line in [
        "  1\t4   40 -24\t20 1 0 0 0 1 0 0 0 1 3001.dat  ",
        "1 4 +40 -24.0 2e1 1.0 0 0 0 1 -0 0 0 1.000000 3001.dat",
        "1 004 40. -24 20.000 1 .0 0 0 1 0 0 0 1 PARTS\\3001.DAT",
        "1 4 40 -24 20 1 0 0 0 1 0 0 0 1.0000000001 3001.dat",
    ]:
        assert ldraw.parse_ldr(f"0 T\n{line}\n").bricks == want, line


def test_mpd_bricks_come_in_step_order():
    m = BrickModel(
        [Brick(3 * i, 0, 0, "3001", color=4, step=s) for i, s in enumerate([2, 0, 1, 0])],
        (4, 2, 12),
    )
    for text in (ldraw.to_mpd(m), ldraw.to_ldr(m)):
        steps = [b.step for b in ldraw.parse_ldr(text).bricks]
        assert steps == sorted(steps) and sorted(steps) == [0, 0, 1, 2]

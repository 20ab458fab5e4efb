"""Colour table, CIEDE2000 matching and k-means quantisation."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from image2lego.lego import colors as C

SOLID_EXCLUDED = re.compile(r"(?i)trans|chrome|pearl|metal|rubber|glitter|speckle|opal|glow")


def test_table_is_solid_colours_only():
    assert len(C.LDRAW_COLORS) >= 80
    assert 16 not in C.LDRAW_COLORS and 24 not in C.LDRAW_COLORS
    for code, c in C.LDRAW_COLORS.items():
        assert c.code == code
        assert not SOLID_EXCLUDED.search(c.name), c.name
        assert all(0.0 <= v <= 1.0 for v in c.rgb)
    # Known transparent/chrome/pearl/rubber codes are absent.
    for code in (33, 36, 47, 383, 334, 135, 297, 80, 256, 75, 79, 21):
        assert code not in C.LDRAW_COLORS


def test_table_values_match_ldconfig():
    assert C.LDRAW_COLORS[71].hex == "#969696"
    assert C.LDRAW_COLORS[0].hex == "#1B2A34"
    assert C.color_name(15) == "White"
    assert C.color_name(72) == "Dark Bluish Grey"


def test_table_regenerates_identically(ldraw_library, repo_root, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_color_table", repo_root / "lego" / "data" / "make_color_table.py"
    )
    M = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(M)
    out = tmp_path / "c.csv"
    assert M.main([str(ldraw_library / "LDConfig.ldr"), "-o", str(out)]) == 0
    shipped = (repo_root / "lego" / "data" / "ldraw_colors.csv").read_text()
    assert out.read_text() == shipped


def test_attribution_present(repo_root):
    head = (repo_root / "lego" / "data" / "ldraw_colors.csv").read_text()[:800]
    assert "LDraw.org" in head and "CC BY" in head
    assert "CC BY" in (C.__doc__ or "")
    bl = (repo_root / "lego" / "data" / "bricklink_colors.csv").read_text()[:1200]
    assert "bricklink.com" in bl and "rebrickable.com" in bl


def test_bricklink_ids_for_well_known_colours():
    expected = {15: 1, 0: 11, 4: 5, 1: 7, 14: 3, 71: 86, 72: 85, 19: 2, 70: 88, 28: 69, 320: 59}
    for ld, bl in expected.items():
        assert C.LDRAW_COLORS[ld].bricklink_id == bl, ld


def test_bricklink_table_rows_are_table_colours(repo_root):
    import csv

    rows = [
        r
        for r in csv.DictReader(
            line
            for line in (repo_root / "lego/data/bricklink_colors.csv").read_text().splitlines()
            if not line.startswith("#")
        )
    ]
    codes = [int(r["ldraw_code"]) for r in rows]
    assert len(codes) == len(set(codes))
    assert set(codes) == set(C.LDRAW_COLORS)  # every solid colour is listed, known or not
    for r in rows:
        assert r["ldraw_name"] == C.LDRAW_COLORS[int(r["ldraw_code"])].name
    bl = [int(r["bricklink_id"]) for r in rows if r["bricklink_id"]]
    assert len(bl) == len(set(bl)), "two LDraw colours mapped to one BrickLink colour"
    rb = [int(r["rebrickable_id"]) for r in rows if r["rebrickable_id"]]
    assert len(rb) == len(set(rb))
    # Unknowns are explicit, and exceptions to "Rebrickable id == LDraw code" exist.
    assert C.LDRAW_COLORS[326].rebrickable_id == 158
    assert any(c.bricklink_id is None for c in C.LDRAW_COLORS.values())
    assert set(C.BRICKLINK_PALETTE) == {
        c for c, v in C.LDRAW_COLORS.items() if v.bricklink_id is not None
    }


def test_color_name_unknown_code():
    with pytest.raises(ValueError, match="16"):
        C.color_name(16)


@pytest.mark.parametrize("code", [0, 1, 4, 14, 15, 71, 72, 19, 320, 288])
def test_nearest_color_of_exact_table_colour_is_itself(code):
    assert C.nearest_color(C.LDRAW_COLORS[code].rgb) == code


def test_nearest_color_with_palette():
    assert C.nearest_color((0.9, 0.1, 0.1), palette=[15, 0, 4, 1]) == 4
    assert C.nearest_color((0.55, 0.55, 0.55), palette=list(C.GREYS)) == 71
    with pytest.raises(ValueError, match="9999"):
        C.nearest_color((0.5, 0.5, 0.5), palette=[15, 9999])
    with pytest.raises(ValueError, match="empty"):
        C.nearest_color((0.5, 0.5, 0.5), palette=[])


def test_ciede2000_differs_from_rgb_euclid_somewhere():
    """CIEDE2000 matching is really used: find a colour where it disagrees with RGB distance."""
    rng = np.random.default_rng(1)
    x = rng.random((300, 3))
    codes = np.array(C.BRICKLINK_PALETTE)  # the default palette
    pal = np.array([C.LDRAW_COLORS[c].rgb for c in codes])
    euclid = codes[np.argmin(((x[:, None] - pal[None]) ** 2).sum(-1), axis=1)]
    ours = np.array([C.nearest_color(v) for v in x])
    assert (ours != euclid).any()


@pytest.mark.parametrize(
    "bad, msg",
    [
        (np.full((4, 3), np.nan), "NaN"),
        (np.array([[0.1, 0.2, np.inf]]), "NaN or infinite"),
        (np.zeros((4, 2)), r"shape \(N, 3\)"),
        (np.zeros((2, 2, 3)), r"shape \(N, 3\)"),
        (np.full((3, 3), 255.0), "0..1"),
        (np.full((3, 3), -0.1), "0..1"),
        (np.array([["a", "b", "c"]]), "numeric"),
    ],
)
def test_quantize_rejects_bad_colours(bad, msg):
    with pytest.raises(ValueError, match=msg):
        C.quantize_colors(bad, 3)


@pytest.mark.parametrize("k", [0, -1, 2.5, True, "3"])
def test_quantize_rejects_bad_k(k):
    with pytest.raises(ValueError, match="k must be"):
        C.quantize_colors(np.zeros((3, 3)), k)


def test_quantize_rejects_bad_mode_and_palette():
    with pytest.raises(ValueError, match="mode"):
        C.quantize_colors(np.zeros((3, 3)), 2, mode="sepia")
    with pytest.raises(ValueError, match="16"):
        C.quantize_colors(np.zeros((3, 3)), 2, palette=[16, 15])


def test_quantize_two_clear_clusters():
    rng = np.random.default_rng(0)
    red = np.clip(np.array([0.70, 0.02, 0.02]) + rng.normal(0, 0.02, (500, 3)), 0, 1)
    blue = np.clip(np.array([0.10, 0.35, 0.66]) + rng.normal(0, 0.02, (300, 3)), 0, 1)
    q = C.quantize_colors(np.vstack([red, blue]), 2)
    assert set(q[:500]) == {4} and set(q[500:]) == {1}


def test_quantize_handles_fewer_colours_than_k():
    x = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    assert C.quantize_colors(x, 8).tolist() == [15, 0]
    assert C.quantize_colors(x[:1], 3).tolist() == [15]
    assert C.quantize_colors(np.zeros((0, 3)), 3).shape == (0,)


def test_quantize_grayscale_maps_to_greys_by_luminance():
    ramp = np.linspace(0, 1, 101)
    g = np.stack([ramp, ramp, ramp], axis=1)
    q = C.quantize_colors(g, 4, mode="grayscale")
    assert set(q) == set(C.GREYS)
    # Monotone: darker inputs never get a lighter grey.
    order = {c: i for i, c in enumerate(C.GREYS)}
    ranks = [order[c] for c in q]
    assert ranks == sorted(ranks)
    # Coloured input in grayscale mode still gives greys only; auto detects grey input.
    rng = np.random.default_rng(3)
    assert set(C.quantize_colors(rng.random((200, 3)), 3, mode="grayscale")) <= set(C.GREYS)
    assert set(C.quantize_colors(g, 6, mode="auto")) <= set(C.GREYS)


@settings(max_examples=25, deadline=None)
@given(
    x=arrays(np.float64, st.tuples(st.integers(1, 60), st.just(3)), elements=st.floats(0, 1)),
    k=st.integers(1, 6),
    seed=st.integers(0, 3),
    use_palette=st.booleans(),
)
def test_quantize_properties(x, k, seed, use_palette):
    palette = [15, 0, 4, 1, 14, 2] if use_palette else None
    q = C.quantize_colors(x, k, palette=palette, seed=seed)
    assert q.shape == (len(x),) and q.dtype.kind == "i"
    assert len(set(q.tolist())) <= k
    allowed = set(palette) if palette else set(C.LDRAW_COLORS)
    assert set(q.tolist()) <= allowed
    # Same colour → same code; deterministic for a seed.
    assert np.array_equal(q, C.quantize_colors(x.copy(), k, palette=palette, seed=seed))
    _, inv = np.unique(np.round(x, 9), axis=0, return_inverse=True)
    for g in np.unique(inv):
        assert len(set(q[inv.reshape(-1) == g].tolist())) == 1


def test_quantize_large_input_is_deterministic_and_k_bounded():
    rng = np.random.default_rng(5)
    x = rng.random((30000, 3))
    a = C.quantize_colors(x, 5, seed=7)
    b = C.quantize_colors(x, 5, seed=7)
    assert np.array_equal(a, b) and 1 <= len(set(a.tolist())) <= 5


# ----------------------------------------------------------------- surface colour regularisation


def _slab(code=1):
    codes = np.full((10, 10, 4), code, np.int64)
    return codes


def test_an_isolated_speck_on_a_face_takes_its_neighbours_colour():
    codes = _slab()
    codes[5, 5, 3] = 4  # one red cell on the top face
    out, info = C.regularise_labels(codes)
    assert (out == 1).all() and info["surface_changed"] == 1


def test_a_2x2_patch_stays_and_a_3_cell_region_goes():
    codes = _slab()
    codes[2:4, 2:4, 3] = 4  # a 2x2 patch (4 cells: the minimum region) on the top face
    codes[7, 6:9, 3] = 14  # a 1x3 line: ends are spurs, then the middle is a speck
    out, _ = C.regularise_labels(codes)
    assert (out[2:4, 2:4, 3] == 4).all()
    assert (out[7, 6:9, 3] == 1).all()
    assert (out >= 0).all()


def test_interior_cells_take_the_nearest_surface_colour():
    codes = np.full((7, 7, 7), 1, np.int64)
    codes[0, :, :] = 4  # the x = 0 face is red
    codes[4, 3, 3] = 14  # an interior cell nobody sees, nearest to a 1-coloured face
    codes[1, 3, 3] = 1  # an interior cell next to the red face
    out, info = C.regularise_labels(codes)
    assert out[4, 3, 3] == 1 and out[1, 3, 3] == 4
    assert (out[0, 1:-1, 1:-1] == 4).all()
    assert info["interior_changed"] >= 1


def test_min_region_zero_keeps_small_regions_and_bad_input_is_refused():
    codes = _slab()
    codes[2:4, 2, 3] = 4  # two cells: each has one own-colour neighbour -> spur rule changes it
    out, _ = C.regularise_labels(codes, min_region=0)
    assert (out[2:4, 2, 3] == 1).all()
    with pytest.raises(ValueError, match="min_region"):
        C.regularise_labels(codes, min_region=-1)
    with pytest.raises(ValueError, match="3-D int grid"):
        C.regularise_labels(codes.astype(float))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.3, 1.0), st.integers(2, 4))
def test_regularised_labels_keep_the_shape_and_leave_no_small_surface_region(seed, fill, k):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    occ = ndimage.binary_closing(rng.random((9, 9, 7)) < fill)
    palette = np.array([1, 4, 14, 15])[:k]
    codes = np.where(occ, rng.choice(palette, size=occ.shape), -1)
    out, _ = C.regularise_labels(codes)
    np.testing.assert_array_equal(out >= 0, occ)  # occupancy never changes
    assert set(np.unique(out[occ]).tolist()) <= set(palette.tolist())
    inner = ndimage.binary_erosion(np.pad(occ, 1), ndimage.generate_binary_structure(3, 1))
    surface = occ & ~inner[1:-1, 1:-1, 1:-1]
    eight = np.ones((3, 3, 3), bool)
    for c in palette:
        lab, n = ndimage.label(surface & (out == c), eight)
        for r in range(1, n + 1):
            region = lab == r
            if region.sum() >= C.MIN_REGION_CELLS:
                continue
            # a small region is left only where no other colour borders it
            ring = ndimage.binary_dilation(region, eight) & surface & ~region
            assert (out[ring] == c).all()


def test_photo_colours_are_only_colours_a_builder_can_buy():
    """Even a photo exactly the colour of one of the 10 colours without a BrickLink id maps to
    a buyable colour by default (a 64³ photo model once failed at its BrickLink list); an
    explicit palette may still name any solid colour."""
    unbuyable = [c for c, v in C.LDRAW_COLORS.items() if v.bricklink_id is None]
    assert len(unbuyable) == 10
    rgb = np.array([C.LDRAW_COLORS[c].rgb for c in unbuyable])
    got = C.quantize_colors(rgb, k=len(unbuyable), mode="photo")
    assert set(got.tolist()) <= set(C.BRICKLINK_PALETTE)
    assert C.unknown_bricklink(got) == []
    assert all(C.nearest_color(v) in C.BRICKLINK_PALETTE for v in rgb)
    assert C.quantize_colors(rgb[:1], k=1, palette=[unbuyable[0]]).tolist() == [unbuyable[0]]

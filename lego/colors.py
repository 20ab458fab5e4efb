"""LEGO colours: the LDraw solid colour table, CIEDE2000 matching and k-means quantisation.

The colour table ships as ``lego/data/ldraw_colors.csv``, generated once from LDraw.org's
``LDConfig.ldr`` by ``lego/data/make_color_table.py``. LDConfig.ldr is part of the LDraw.org
Parts Library, licensed CC BY 2.0 and CC BY 4.0 (see CAreadme.txt in the library;
attribution: LDraw.org, https://library.ldraw.org/). We keep only solid colours: no
transparent, chrome, pearlescent, metallic, rubber, glitter/speckle/material colours and not
the meta codes 16 and 24.

BrickLink and Rebrickable colour ids come from ``lego/data/bricklink_colors.csv`` (compiled
from the BrickLink colour guide and Rebrickable's colours table; its header names the
sources). Unknown ids are ``None``: exporters report them rather than guess.

Quantisation follows the paper's §2.5 (k-means to ``k`` predominant colours, each mapped to
the nearest LEGO colour) but clusters in CIELAB rather than RGB and matches with CIEDE2000,
both of which track perceived colour difference far better than RGB Euclidean distance.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).with_name("data")

#: The LEGO greys used for grayscale input, dark to light.
GREYS: tuple[int, ...] = (0, 72, 71, 15)  # Black, Dark Bluish Grey, Light Bluish Grey, White

QUANTIZE_MODES = ("photo", "grayscale", "auto")

#: Colours handed to k-means at most; larger inputs are subsampled (seeded) for the fit and
#: every colour is then assigned to its nearest centre.
KMEANS_MAX_SAMPLES = 20000
KMEANS_N_INIT = 4


@dataclass(frozen=True)
class LegoColor:
    code: int  # LDraw colour code
    name: str  # LDraw name with spaces, e.g. "Light Bluish Grey"
    rgb: tuple[float, float, float]  # sRGB in 0..1
    bricklink_id: int | None = None
    rebrickable_id: int | None = None

    @property
    def hex(self) -> str:
        return "#" + "".join(f"{round(c * 255):02X}" for c in self.rgb)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def _opt_int(s: str | None) -> int | None:
    s = (s or "").strip()
    return int(s) if s else None


def _load() -> dict[int, LegoColor]:
    ids = {int(r["ldraw_code"]): r for r in _read_csv(DATA_DIR / "bricklink_colors.csv")}
    out: dict[int, LegoColor] = {}
    for r in _read_csv(DATA_DIR / "ldraw_colors.csv"):
        code = int(r["code"])
        h = r["hex"].lstrip("#")
        rgb = tuple(int(h[i : i + 2], 16) / 255.0 for i in (0, 2, 4))
        ext = ids.get(code, {})
        out[code] = LegoColor(
            code,
            r["name"],
            rgb,  # type: ignore[arg-type]
            _opt_int(ext.get("bricklink_id")),
            _opt_int(ext.get("rebrickable_id")),
        )
    return out


LDRAW_COLORS: dict[int, LegoColor] = _load()

#: Codes with a known BrickLink id: pass as ``palette`` when the model must be orderable
#: through a BrickLink wanted list.
BRICKLINK_PALETTE: tuple[int, ...] = tuple(
    c for c, v in sorted(LDRAW_COLORS.items()) if v.bricklink_id is not None
)


def color_name(code: int) -> str:
    """The LDraw name of a solid colour code; ``ValueError`` for codes not in the table."""
    return get(code).name


def get(code: int) -> LegoColor:
    try:
        return LDRAW_COLORS[int(code)]
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"LDraw colour code {code!r} is not a solid colour in the Image2LEGO table"
        ) from None


def validate_palette(palette) -> list[int]:
    """Check a user palette of LDraw codes; return it as a sorted, de-duplicated list."""
    if palette is None:
        raise ValueError("palette is None")
    codes = list(palette)
    if not codes:
        raise ValueError("palette is empty: give at least one LDraw colour code")
    bad = [c for c in codes if not isinstance(c, int | np.integer) or int(c) not in LDRAW_COLORS]
    if bad:
        raise ValueError(
            f"palette has codes that are not LDraw solid colours: {bad!r} "
            f"(see image2lego.lego.colors.LDRAW_COLORS)"
        )
    return sorted({int(c) for c in codes})


def _validate_rgb(rgb) -> np.ndarray:
    a = np.asarray(rgb)
    if a.dtype == object or not (
        np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)
    ):
        raise ValueError(f"colours must be a numeric array, got dtype {a.dtype}")
    if a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"colours must have shape (N, 3), got {a.shape}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        n = int((~np.isfinite(a)).any(axis=1).sum())
        raise ValueError(f"colours contain NaN or infinite values ({n} rows)")
    if a.size and (a.min() < 0.0 or a.max() > 1.0):
        raise ValueError(
            f"colours must be floats in 0..1, got range [{a.min():g}, {a.max():g}] "
            "(divide 8-bit colours by 255)"
        )
    return a


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (N, 3) in 0..1 to CIELAB (D65) via scikit-image."""
    from skimage.color import rgb2lab

    a = np.asarray(rgb, dtype=np.float64).reshape(-1, 3)
    return rgb2lab(a[:, None, :], channel_axis=-1)[:, 0, :]


def _palette_lab(codes: list[int]) -> np.ndarray:
    return rgb_to_lab(np.array([LDRAW_COLORS[c].rgb for c in codes]))


def palette_distances(lab: np.ndarray, codes) -> np.ndarray:
    """CIEDE2000 from each Lab row (N, 3) to each LDraw colour of ``codes``: (N, len(codes))."""
    from skimage.color import deltaE_ciede2000

    pal = _palette_lab(list(codes))
    return deltaE_ciede2000(lab[:, None, :], pal[None, :, :], channel_axis=-1)


def _nearest(lab: np.ndarray, codes: list[int]) -> np.ndarray:
    """Index into ``codes`` of the nearest palette colour (CIEDE2000) for each Lab row."""
    return np.argmin(palette_distances(lab, codes), axis=1)  # ties → first (lowest) code


def nearest_color(rgb, palette: list[int] | None = None) -> int:
    """LDraw code of the solid colour nearest to one sRGB triple (0..1) by CIEDE2000, among
    ``palette`` (default: :data:`BRICKLINK_PALETTE`, the colours that can be bought)."""
    a = _validate_rgb(np.asarray(rgb, dtype=np.float64).reshape(1, -1))
    codes = validate_palette(palette) if palette is not None else list(BRICKLINK_PALETTE)
    return codes[int(_nearest(rgb_to_lab(a), codes)[0])]


def _is_achromatic(rgb: np.ndarray, tol: float = 1.5 / 255) -> bool:
    return bool(rgb.size) and float(np.ptp(rgb, axis=1).max()) <= tol


def quantize_colors(
    rgb: np.ndarray,
    k: int,
    mode: str = "photo",
    palette: list[int] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Map N sRGB colours (0..1) to LDraw codes using at most ``k`` distinct clusters.

    k-means (scikit-learn, fixed ``n_init``, ``random_state=seed``) clusters the colours in
    CIELAB; each cluster centre is mapped to its nearest LEGO colour by CIEDE2000 (two
    clusters may land on the same LEGO colour, so the result has *at most* k codes).
    ``palette`` restricts the choice to those LDraw codes (default: :data:`BRICKLINK_PALETTE`,
    the colours that can be bought). ``mode="grayscale"`` drops the
    chroma (clusters on lightness) and maps to the LEGO greys (White, Light and Dark Bluish
    Grey, Black) unless a palette is given; ``"auto"`` picks grayscale when every input
    colour is grey. Colours are compared at 8-bit sRGB resolution; with fewer distinct
    colours than ``k`` each colour is its own cluster.
    Returns an int array of LDraw codes, shape ``(N,)``; deterministic for a seed.
    """
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"mode must be one of {QUANTIZE_MODES}, got {mode!r}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    a = _validate_rgb(rgb)
    if palette is not None:
        codes = validate_palette(palette)
    n = a.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if mode == "auto":
        mode = "grayscale" if _is_achromatic(a) else "photo"
    if palette is None:
        # photo colours: only colours a builder can buy (a BrickLink colour id is known);
        # the 10 others (Umber Brown, Lilac, Fabuland Red, ...) made a 64³ photo model fail
        # at the BrickLink list after every other output was made
        codes = list(GREYS) if mode == "grayscale" else list(BRICKLINK_PALETTE)

    # Cluster distinct colours (at 8-bit sRGB resolution, far finer than the LEGO palette),
    # weighted by how often they occur: exact for k-means and much faster than clustering
    # every voxel of a large model.
    q8 = np.rint(a * 255.0).astype(np.int64)
    keys = (q8[:, 0] << 16) | (q8[:, 1] << 8) | q8[:, 2]
    ukeys, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    urgb = np.stack([(ukeys >> 16) & 255, (ukeys >> 8) & 255, ukeys & 255], axis=1) / 255.0
    uniq = rgb_to_lab(urgb)
    if mode == "grayscale":
        uniq[:, 1:] = 0.0  # lightness only: the greys are matched by luminance
        uniq, inv2 = np.unique(np.round(uniq, 9), axis=0, return_inverse=True)
        inv2 = inv2.reshape(-1)
        counts = np.bincount(inv2, weights=counts, minlength=len(uniq))
        inverse = inv2[inverse]
    if len(uniq) <= k:
        centres, labels = uniq, np.arange(len(uniq))
    else:
        from sklearn.cluster import KMeans

        fit_x, fit_w = uniq, counts.astype(np.float64)
        if len(uniq) > KMEANS_MAX_SAMPLES:
            rng = np.random.default_rng(seed)
            idx = np.sort(rng.choice(len(uniq), KMEANS_MAX_SAMPLES, replace=False))
            fit_x, fit_w = uniq[idx], fit_w[idx]
        km = KMeans(n_clusters=int(k), n_init=KMEANS_N_INIT, random_state=seed)
        km.fit(fit_x, sample_weight=fit_w)
        centres, labels = km.cluster_centers_, km.predict(uniq)
    centre_codes = np.asarray(codes, dtype=np.int64)[_nearest(centres, codes)]
    return centre_codes[labels][inverse]


def unknown_bricklink(codes) -> list[int]:
    """The codes among ``codes`` that have no known BrickLink colour id (sorted)."""
    return sorted({int(c) for c in codes if get(c).bricklink_id is None})


#: Surface colour regions smaller than this many cells are given to their neighbours'
#: colour (see :func:`regularise_labels`).
MIN_REGION_CELLS = 4


def regularise_labels(
    codes: np.ndarray, min_region: int = MIN_REGION_CELLS
) -> tuple[np.ndarray, dict[str, int]]:
    """Colour labels a builder can see and the bricks can merge (issue #17, item 1).

    ``codes`` is an int grid ``[x, y, z]`` (LDraw code, -1 empty). Only the surface (cells
    with an empty face neighbour) shows; there, in order:

    * **specks and spurs go**: a cell with at most one surface neighbour (of 26) of its own
      colour takes the colour most of its surface neighbours have (twice, so a jagged
      boundary is smoothed too; a colour patch of 2x2 cells or more stays);
    * **a minimum region size**: surface regions (26-connected, one colour) under
      ``min_region`` cells take the colour that borders them most;
    * **interior cells** take the colour of the nearest surface cell, so a surface region
      continues inwards in columns and layers the merger can tile with the same bricks.

    Returns the new codes and counts ``{"surface_changed", "interior_changed"}``.
    """
    from scipy import ndimage

    codes = np.asarray(codes)
    if codes.ndim != 3 or codes.dtype.kind not in "iu":
        raise ValueError(f"codes must be a 3-D int grid, got {codes.dtype} {codes.shape}")
    if isinstance(min_region, bool) or not isinstance(min_region, int) or min_region < 0:
        raise ValueError(f"min_region must be an int >= 0, got {min_region!r}")
    occ = codes >= 0
    out = codes.copy()
    info = {"surface_changed": 0, "interior_changed": 0}
    if not occ.any():
        return out, info
    inner = ndimage.binary_erosion(np.pad(occ, 1), ndimage.generate_binary_structure(3, 1))
    surface = occ & ~inner[1:-1, 1:-1, 1:-1]
    palette = np.unique(codes[occ])
    if len(palette) > 1:
        box = np.ones((3, 3, 3))
        for _ in range(2):
            counts = np.stack(
                [
                    ndimage.convolve((surface & (out == c)).astype(np.int16), box, mode="constant")
                    for c in palette
                ]
            )
            own = (
                np.take_along_axis(counts, np.searchsorted(palette, np.maximum(out, 0))[None], 0)[0]
                - 1
            )
            best = counts.argmax(axis=0)
            change = surface & (own <= 1) & (counts.max(axis=0) > own + 1) & (palette[best] != out)
            if not change.any():
                break
            out[change] = palette[best[change]]
            info["surface_changed"] += int(change.sum())
        if min_region > 1:
            info["surface_changed"] += _absorb_small(out, surface, palette, min_region)
    deep = occ & ~surface
    if deep.any():
        idx = ndimage.distance_transform_edt(~surface, return_distances=False, return_indices=True)
        near = out[tuple(i[deep] for i in idx)]
        info["interior_changed"] = int((near != out[deep]).sum())
        out[deep] = near
    return out, info


def _absorb_small(
    out: np.ndarray, surface: np.ndarray, palette: np.ndarray, min_region: int
) -> int:
    """Give each surface region under ``min_region`` cells the colour bordering it most."""
    from scipy import ndimage

    eight = np.ones((3, 3, 3), bool)
    changed = 0
    for c in palette:
        lab, n = ndimage.label(surface & (out == c), eight)
        if not n:
            continue
        sizes = np.bincount(lab.ravel())
        boxes = ndimage.find_objects(lab)
        for k in np.flatnonzero(sizes[1:] < min_region) + 1:
            sl = tuple(
                slice(max(b.start - 1, 0), min(b.stop + 1, n_))
                for b, n_ in zip(boxes[k - 1], out.shape, strict=True)
            )
            sub, region = out[sl], lab[sl] == k
            ring = ndimage.binary_dilation(region, eight) & surface[sl] & ~region & (sub != c)
            if not ring.any():
                continue  # a whole small surface in one colour: nothing to give it to
            vals, cnt = np.unique(sub[ring], return_counts=True)
            sub[region] = vals[np.argmax(cnt)]
            changed += int(region.sum())
    return changed


__all__ = [
    "regularise_labels",
    "BRICKLINK_PALETTE",
    "GREYS",
    "LDRAW_COLORS",
    "LegoColor",
    "color_name",
    "get",
    "nearest_color",
    "quantize_colors",
    "rgb_to_lab",
    "unknown_bricklink",
    "validate_palette",
]

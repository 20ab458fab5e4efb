"""Photo → 2D LEGO mosaic: 1×1 tiles or plates (square or round) on a two-layer plate base.

The paper (§1, Figure 2) compares its 3D face against a LEGO Mosaic Maker mosaic; this is that
mosaic, built from real parts in real LEGO colours:

* the picture is resized (area average) to ``width × height`` studs, 16 to 96 each, multiples
  of 8 (a centre crop keeps the photo's aspect unless ``fit="stretch"``);
* its colours are quantised as the 3D path does (:func:`.colors.quantize_colors`: k-means in
  CIELAB, every centre mapped to the nearest LEGO colour by CIEDE2000), by default among the
  colours BrickLink knows (:data:`.colors.BRICKLINK_PALETTE`, so the wanted list can be
  ordered), optionally with Floyd–Steinberg error diffusion over those k LEGO colours;
* each stud becomes a 1×1 element: ``tile`` (3070b), ``round_tile`` (98138), ``plate``
  (3024) or ``round_plate`` (6141, BrickLink 4073);
* underneath, two layers of plates: 8×8 plates (41539) on top, and below them 8×8, 4×8 and 4×4
  plates (41539, 3035, 3031) whose seams are offset by 4 studs, so every seam of the top layer
  is bridged and the whole mosaic is one rigid piece (no baseplate needed);
* build steps: the bottom base layer, the top base layer, then one step per 16×16 section of
  the picture in reading order (top-left first).

Coordinates follow :mod:`.bricks` (Z up): the picture lies face-up, image row 0 at the back
(largest ``y``), so a view from above shows it the right way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .bricks import Brick, BrickModel
from .colors import BRICKLINK_PALETTE, LDRAW_COLORS, quantize_colors, rgb_to_lab, validate_palette
from .errors import Image2LegoError


class MosaicError(Image2LegoError, ValueError):
    """A bad mosaic option or picture (size, colours, element, image shape or values)."""


ELEMENTS: dict[str, str] = {
    "tile": "3070b",
    "round_tile": "98138",
    "plate": "3024",
    "round_plate": "6141",
}
FITS = ("crop", "stretch")
#: lying: tiles/plates face-up on a plate base (the classic mosaic); standing: an upright wall of
#: bricks two studs deep on a foot, the picture on its front, one picture row per brick course
ORIENTATIONS = ("lying", "standing")
STAND_DEPTH = 2  # studs: the wall's depth (front cells show the picture, back ones the base)
STAND_FOOT = 4  # studs: the foot's depth under the wall
MIN_STUDS, MAX_STUDS, STEP_STUDS = 16, 96, 8
SECTION = 16  # studs per instruction section side
BASE = 8  # side of the base's large plates (studs)
BASE_PLATES = {(8, 8): "41539", (4, 8): "3035", (8, 4): "3035", (4, 4): "3031"}


@dataclass
class MosaicOptions:
    width: int = 48  # studs
    height: int = 48
    k: int = 8
    element: str = "tile"
    dither: bool = False
    fit: str = "crop"
    base_color: int = 0  # Black
    palette: list[int] | None = None  # None: colors.BRICKLINK_PALETTE (see real_elements)
    seed: int = 0
    orientation: str = "lying"  # see ORIENTATIONS
    #: with no palette, only colours in which the picture's element exists as a real LEGO
    #: element (:mod:`.elements`); False: every BrickLink colour
    real_elements: bool = True

    def validate(self) -> None:
        for name in ("width", "height"):
            v = getattr(self, name)
            if (
                isinstance(v, bool)
                or not isinstance(v, int | np.integer)
                or not MIN_STUDS <= v <= MAX_STUDS
                or v % STEP_STUDS
            ):
                raise MosaicError(
                    f"mosaic {name} must be a multiple of {STEP_STUDS} studs from {MIN_STUDS} "
                    f"to {MAX_STUDS}, got {v!r}"
                )
        if isinstance(self.k, bool) or not isinstance(self.k, int | np.integer) or self.k < 1:
            raise MosaicError(f"k must be an integer >= 1, got {self.k!r}")
        if self.element not in ELEMENTS:
            raise MosaicError(f"element must be one of {sorted(ELEMENTS)}, got {self.element!r}")
        if self.fit not in FITS:
            raise MosaicError(f"fit must be one of {FITS}, got {self.fit!r}")
        if self.orientation not in ORIENTATIONS:
            raise MosaicError(
                f"orientation must be one of {ORIENTATIONS}, got {self.orientation!r}"
            )
        if int(self.base_color) not in LDRAW_COLORS:
            raise MosaicError(f"base colour {self.base_color!r} is not an LDraw solid colour code")
        if not isinstance(self.real_elements, bool):
            raise MosaicError(f"real_elements must be True or False, got {self.real_elements!r}")
        if self.palette is not None:
            try:
                self.palette = validate_palette(self.palette)
            except ValueError as exc:
                raise MosaicError(str(exc)) from None


@dataclass
class Mosaic:
    """The result: the colour of every stud, the brick model and what it cost in colour error."""

    codes: np.ndarray  # (height, width) LDraw codes, row 0 = top of the picture
    target: np.ndarray  # (height, width, 3) the resized photo, sRGB 0..1
    model: BrickModel
    options: MosaicOptions
    stats: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- image → cells


def _validate_image(image) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise MosaicError(f"image must be (H, W, 3) RGB or (H, W, 4) RGBA, got shape {a.shape}")
    if a.shape[0] < 2 or a.shape[1] < 2:
        raise MosaicError(f"image is too small ({a.shape[1]}×{a.shape[0]} pixels)")
    if a.dtype == np.uint8:
        a = a.astype(np.float64) / 255.0
    elif np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise MosaicError("float images must be finite and in 0..1")
    else:
        raise MosaicError(f"image must be uint8 or float 0..1, got dtype {a.dtype}")
    if a.shape[2] == 4:  # composite transparent parts over white
        alpha = a[..., 3:]
        a = a[..., :3] * alpha + (1.0 - alpha)
    return a


def fit_image(
    image, width: int, height: int, fit: str = "crop", aspect: float | None = None
) -> np.ndarray:
    """The photo as ``(height, width, 3)`` cell colours: centre crop to the aspect (``aspect``,
    width over height, when the cells are not square), area average."""
    from skimage.transform import resize

    a = _validate_image(image)
    if fit == "crop":
        h, w = a.shape[:2]
        target = aspect if aspect is not None else width / height
        if w / h > target:  # too wide
            cw = max(1, round(h * target))
            x0 = (w - cw) // 2
            a = a[:, x0 : x0 + cw]
        else:
            ch = max(1, round(w / target))
            y0 = (h - ch) // 2
            a = a[y0 : y0 + ch]
    out = resize(a, (height, width), order=1, anti_aliasing=True, mode="edge")
    return np.clip(out, 0.0, 1.0)


def _dither(target: np.ndarray, codes: list[int]) -> np.ndarray:
    """Floyd–Steinberg error diffusion in CIELAB over ``codes``, nearest by CIEDE2000."""
    from skimage.color import deltaE_ciede2000

    h, w = target.shape[:2]
    lab = rgb_to_lab(target.reshape(-1, 3)).reshape(h, w, 3)
    pal = rgb_to_lab(np.array([LDRAW_COLORS[c].rgb for c in codes]))
    out = np.zeros((h, w), dtype=np.int64)
    for y in range(h):
        # serpentine scan: alternate direction each row (fewer directional artefacts)
        xs = range(w) if y % 2 == 0 else range(w - 1, -1, -1)
        sgn = 1 if y % 2 == 0 else -1
        for x in xs:
            v = lab[y, x]
            i = int(np.argmin(deltaE_ciede2000(np.broadcast_to(v, pal.shape), pal)))
            out[y, x] = codes[i]
            err = v - pal[i]
            if 0 <= x + sgn < w:
                lab[y, x + sgn] += err * (7 / 16)
            if y + 1 < h:
                if 0 <= x - sgn < w:
                    lab[y + 1, x - sgn] += err * (3 / 16)
                lab[y + 1, x] += err * (5 / 16)
                if 0 <= x + sgn < w:
                    lab[y + 1, x + sgn] += err * (1 / 16)
    return out


def default_palette(options: MosaicOptions) -> list[int]:
    """The colours a mosaic picks from when no palette is given: the BrickLink colours, and
    with ``real_elements`` only those in which its picture element exists (a lying mosaic's
    tile or plate; a standing one's bricks: :data:`.elements.ELEMENT_PALETTE`)."""
    if not options.real_elements:
        return list(BRICKLINK_PALETTE)
    from .elements import ELEMENT_PALETTE, available

    if options.orientation == "standing":
        return list(ELEMENT_PALETTE)
    pid = ELEMENTS[options.element]
    return [c for c in BRICKLINK_PALETTE if available(pid, c)]


def quantize(target: np.ndarray, options: MosaicOptions) -> np.ndarray:
    """LDraw code per cell, ``(height, width)``; at most ``k`` colours; deterministic for a seed."""
    h, w = target.shape[:2]
    palette = options.palette if options.palette is not None else default_palette(options)
    flat = quantize_colors(target.reshape(-1, 3), int(options.k), "photo", palette, options.seed)
    codes = flat.reshape(h, w)
    if options.dither:
        codes = _dither(target, sorted({int(c) for c in flat}))
    return codes


def color_error(target: np.ndarray, codes: np.ndarray, blur: int = 0) -> float:
    """Mean CIEDE2000 between the photo cells and the LEGO colours; ``blur`` > 0 compares both
    after a ``(2·blur+1)²`` box filter (what the eye sees from a distance, where dithering helps).
    """
    from scipy.ndimage import uniform_filter
    from skimage.color import deltaE_ciede2000

    lego = np.array([LDRAW_COLORS[int(c)].rgb for c in codes.reshape(-1)]).reshape(target.shape)
    a, b = target, lego
    if blur:
        size = (2 * blur + 1, 2 * blur + 1, 1)
        a = uniform_filter(a, size=size, mode="nearest")
        b = uniform_filter(b, size=size, mode="nearest")
    la = rgb_to_lab(a.reshape(-1, 3))
    lb = rgb_to_lab(b.reshape(-1, 3))
    return float(deltaE_ciede2000(la, lb).mean())


# --------------------------------------------------------------------------- bricks


def _segments(n: int, offset: int) -> list[tuple[int, int]]:
    """Cut ``[0, n)`` at ``offset, offset + 8, …``: pieces of 8 and 4 studs."""
    cuts = [0, *range(offset, n, BASE), n]
    cuts = sorted(set(cuts))
    return [(a, b - a) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def base_layer(width: int, height: int, z: int, offset: int, color: int) -> list[Brick]:
    """One plate layer covering ``width × height`` studs, seams at ``offset + 8·i``."""
    out = []
    for x0, nx in _segments(width, offset):
        for y0, ny in _segments(height, offset):
            pid = BASE_PLATES[(nx, ny)]
            # long side along +x unless the piece is taller than wide
            out.append(Brick(z, y0, x0, pid, rotated=ny > nx, color=color))
    return out


def build_model(codes: np.ndarray, options: MosaicOptions) -> BrickModel:
    """The brick model of a mosaic whose studs have colours ``codes`` (row 0 = top)."""
    h, w = codes.shape
    pid = ELEMENTS[options.element]
    base = int(options.base_color)
    bricks = [
        Brick(b.z, b.y, b.x, b.part_id, b.rotated, b.color, 0)
        for b in base_layer(w, h, 0, BASE // 2, base)
    ]
    bricks += [
        Brick(b.z, b.y, b.x, b.part_id, b.rotated, b.color, 1) for b in base_layer(w, h, 1, 0, base)
    ]
    cols = -(-w // SECTION)
    for r in range(h):
        y = h - 1 - r
        for x in range(w):
            section = (r // SECTION) * cols + x // SECTION
            bricks.append(Brick(2, y, x, pid, False, int(codes[r, x]), 2 + section))
    meta = {
        "kind": "mosaic",
        "element": options.element,
        "studs": [w, h],
        "k": int(options.k),
        "dither": bool(options.dither),
        "base_color": base,
    }
    return BrickModel(bricks, (w, h, 3), meta)


def standing_rows(height: int) -> int:
    """Picture rows of a standing mosaic ``height`` studs tall: one per brick course (a 1x1
    brick is 1.2 studs tall), so the picture keeps its proportions."""
    from .units import BRICK_MM, STUD_MM

    return max(1, round(height * STUD_MM / BRICK_MM))


def standing_model(codes: np.ndarray, options: MosaicOptions) -> BrickModel:
    """An upright mosaic: the picture (``codes``, row 0 = top) on the front (-Y) of a wall of
    bricks :data:`STAND_DEPTH` studs deep, on a one-brick foot :data:`STAND_FOOT` studs deep,
    through the normal converter (one brick course per row, running bond where colours allow,
    one piece; nothing overhangs, so it stands). Its steps are the converter's: course by
    course, from the foot up."""
    from .convert import ConvertOptions, voxels_to_bricks

    h, w = codes.shape
    base = int(options.base_color)
    grid = np.zeros((w, STAND_FOOT, h + 1), dtype=bool)
    grid[:, :STAND_DEPTH, 1:] = True
    grid[:, :, 0] = True
    rgb = np.zeros(grid.shape + (3,))
    rgb[:, :, 0] = LDRAW_COLORS[base].rgb
    lut = {int(c): LDRAW_COLORS[int(c)].rgb for c in np.unique(codes)}
    front = np.array([[lut[int(c)] for c in row] for row in codes])  # (h, w, 3)
    for y in range(STAND_DEPTH):  # the column's colour through the wall's depth
        rgb[:, y, 1:] = front[::-1].transpose(1, 0, 2)
    used = sorted({*lut, base})
    opts = ConvertOptions(
        scale="paper",
        brick_types="bricks",
        color_mode="photo",
        k=len(used),
        palette=used,
        seed=int(options.seed),
        real_elements=options.real_elements,
    )
    model = voxels_to_bricks(grid, rgb, opts)
    model.meta.update(
        {
            "kind": "mosaic",
            "orientation": "standing",
            "element": "brick",
            "studs": [w, h],
            "k": int(options.k),
            "dither": bool(options.dither),
            "base_color": base,
        }
    )
    return model


def make_mosaic(image, options: MosaicOptions | None = None) -> Mosaic:
    """Photo (``(H, W, 3|4)`` uint8 or float 0..1) → :class:`Mosaic`."""
    options = options or MosaicOptions()
    options.validate()
    standing = options.orientation == "standing"
    rows = standing_rows(options.height) if standing else options.height
    aspect = options.width / options.height
    target = fit_image(image, options.width, rows, options.fit, aspect)
    codes = quantize(target, options)
    model = standing_model(codes, options) if standing else build_model(codes, options)
    stats = {
        "studs": int(codes.size),
        "colors": len({int(c) for c in codes.reshape(-1)}),
        "delta_e": round(color_error(target, codes), 2),
        "delta_e_blur1": round(color_error(target, codes, blur=1), 2),
        "bricks": len(model),
        "steps": model.n_steps(),
        "orientation": options.orientation,
    }
    if standing:  # surface cells the converter recoloured so that the bricks bond
        reg = model.meta.get("colors", {}).get("regularised", {})
        stats["recoloured_cells"] = int(reg.get("surface_changed", 0))
        stats["connected"] = bool(model.meta.get("connected", False))
    return Mosaic(codes, target, model, options, stats)


# --------------------------------------------------------------------------- pictures


def render(
    codes: np.ndarray,
    element: str = "tile",
    cell: int = 16,
    base_color: int = 0,
    upto: int | None = None,
    highlight: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """A top view of the mosaic as an ``(H·cell, W·cell, 3)`` uint8 image.

    Square tiles are drawn as squares with a thin gap, round ones as discs on the base colour,
    plates with a lighter stud ring. ``upto`` draws only the first ``upto`` cells in section
    order (for instruction pages); ``highlight = (r0, c0, r1, c1)`` outlines a section in red.
    """
    if element not in ELEMENTS:
        raise MosaicError(f"element must be one of {sorted(ELEMENTS)}, got {element!r}")
    h, w = codes.shape
    base = np.array(LDRAW_COLORS[int(base_color)].rgb)
    img = np.empty((h * cell, w * cell, 3))
    img[:] = base * 0.85
    yy, xx = np.mgrid[0:cell, 0:cell] + 0.5
    c = cell / 2
    rr = np.hypot(yy - c, xx - c)
    if element.startswith("round"):
        shape = rr <= c - max(1, cell // 16)
    else:
        g = max(1, cell // 16)
        shape = (yy > g) & (yy < cell - g) & (xx > g) & (xx < cell - g)
    stud = (np.abs(rr - cell * 0.3) < max(0.75, cell / 24)) if "plate" in element else None
    lut = {int(k): np.array(LDRAW_COLORS[int(k)].rgb) for k in np.unique(codes)}
    for r in range(h):
        for x in range(w):
            if upto is not None and _section_order(r, x, w) >= upto:
                continue
            col = lut[int(codes[r, x])]
            tile = img[r * cell : (r + 1) * cell, x * cell : (x + 1) * cell]
            tile[shape] = col
            if stud is not None:
                tile[stud & shape] = np.clip(col * 0.75 + 0.25, 0, 1)
    if highlight is not None:
        r0, c0, r1, c1 = (v * cell for v in highlight)
        t = max(2, cell // 6)
        red = np.array([0.9, 0.1, 0.1])
        img[r0 : r0 + t, c0:c1] = red
        img[r1 - t : r1, c0:c1] = red
        img[r0:r1, c0 : c0 + t] = red
        img[r0:r1, c1 - t : c1] = red
    return np.rint(img * 255).astype(np.uint8)


def _section_order(r: int, x: int, w: int) -> int:
    """Rank of cell (r, x) when sections are built in reading order, rows within a section."""
    cols = -(-w // SECTION)
    section = (r // SECTION) * cols + x // SECTION
    return section * SECTION * SECTION + (r % SECTION) * SECTION + x % SECTION


def section_boxes(height: int, width: int) -> list[tuple[int, int, int, int]]:
    """``(r0, c0, r1, c1)`` of every 16×16 section in build order."""
    return [
        (r, c, min(r + SECTION, height), min(c + SECTION, width))
        for r in range(0, height, SECTION)
        for c in range(0, width, SECTION)
    ]


__all__ = [
    "ELEMENTS",
    "Mosaic",
    "MosaicError",
    "MosaicOptions",
    "build_model",
    "color_error",
    "fit_image",
    "make_mosaic",
    "quantize",
    "render",
    "section_boxes",
]

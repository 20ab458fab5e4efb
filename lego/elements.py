"""Real LEGO elements: which catalogue part exists in which colour, and which are rare.

The table ``lego/data/elements.csv`` (built by ``tools/make_element_table.py`` from
Rebrickable's catalogue downloads; its header names the source, licence and date) lists, per
solid LDraw colour, the catalogue parts LEGO has made in it (a LEGO element id exists) and how
many sets the colour appears in and in which years. By default a model only uses such
combinations (:class:`~image2lego.lego.convert.ConvertOptions` ``real_elements``):

* photo colours are quantised to :data:`ELEMENT_PALETTE`, the buyable colours that have a
  1×1 plate and a 1×1 brick, so every cell can be built in its own colour;
* after merging, a brick whose part does not exist in its colour is split into parts that do
  (:func:`enforce`; when the pieces would disconnect the model, or no parts fit, the brick
  takes the nearest colour, by CIEDE2000, in which its part exists);
* parts lists mark rare elements (:func:`rarity`: a retired colour, or one in few sets).

Pure numpy (no imaging or GUI library), like the rest of :mod:`image2lego.lego`.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from .catalogue import ALL_PARTS, find
from .choices import ELEMENT_STRATEGY, values
from .colors import BRICKLINK_PALETTE, LDRAW_COLORS, _palette_lab, palette_distances

TABLE_PATH = Path(__file__).with_name("data") / "elements.csv"

#: A colour last seen in a set more than this many years before the table's date is *retired*:
#: its elements are only sold second-hand.
RETIRED_AFTER_YEARS = 2
#: A colour in fewer sets than this (over all its parts) is *rare*.
RARE_SETS = 500

#: The parts a colour must have to be offered for photo colours: the 1×1 plate and brick, so
#: that any cell can be built in its own colour whatever the merger makes of its neighbours.
UNIT_PARTS = ("3024", "3005")

STRATEGIES = values(ELEMENT_STRATEGY)


@dataclass(frozen=True)
class ColourElements:
    """One colour's row of the element table."""

    code: int  # LDraw colour code
    rebrickable_id: int
    sets: int  # sets the colour appears in (any part)
    first_year: int | None
    last_year: int | None
    parts: frozenset[str]  # catalogue part ids that exist as an element in this colour


@dataclass(frozen=True)
class ElementTable:
    colours: dict[int, ColourElements]
    year: int  # the year of the data (from the header's download date)
    header: str  # the table's comment header (source, licence, date)

    def available(self, part_id: str, code: int) -> bool:
        row = self.colours.get(int(code))
        return row is not None and part_id in row.parts

    def parts_in(self, code: int) -> frozenset[str]:
        row = self.colours.get(int(code))
        return row.parts if row is not None else frozenset()

    def colours_with(self, part_id: str) -> list[int]:
        return sorted(c for c, r in self.colours.items() if part_id in r.parts)


def _int(s: str) -> int | None:
    return int(s) if s.strip() else None


@cache
def table(path: Path = TABLE_PATH) -> ElementTable:
    """The element table (read once)."""
    text = Path(path).read_text(encoding="utf-8")
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
    dates = re.findall(r"\b(\d{4})-\d{2}-\d{2}\b", header)
    if not dates:
        raise ValueError(f"{path}: the header names no date (YYYY-MM-DD)")
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    colours: dict[int, ColourElements] = {}
    for r in csv.DictReader(body):
        parts = frozenset(r["parts"].split())
        unknown = parts - set(ALL_PARTS)
        if unknown:
            raise ValueError(f"{path}: parts {sorted(unknown)} are not in the catalogue")
        code = int(r["ldraw_code"])
        colours[code] = ColourElements(
            code,
            int(r["rebrickable_id"]),
            int(r["sets"]),
            _int(r["first_year"]),
            _int(r["last_year"]),
            parts,
        )
    return ElementTable(colours, max(int(y) for y in dates), header)


def available(part_id: str, code: int) -> bool:
    """Whether ``part_id`` exists as a real LEGO element in LDraw colour ``code``."""
    return table().available(part_id, code)


def _palette() -> tuple[int, ...]:
    t = table()
    return tuple(c for c in BRICKLINK_PALETTE if all(t.available(p, c) for p in UNIT_PARTS))


#: Buyable colours (a BrickLink id is known) that exist as a 1×1 plate and a 1×1 brick: the
#: default choice for photo colours.
ELEMENT_PALETTE: tuple[int, ...] = _palette()


def rarity(part_id: str, code: int) -> str:
    """Why an element is hard to buy, or ``""``: ``"not a LEGO element"``, ``"retired colour
    (last set 2007)"`` or ``"rare colour (246 sets)"``."""
    t = table()
    row = t.colours.get(int(code))
    if row is None or part_id not in row.parts:
        return "not a LEGO element"
    notes = []
    if row.last_year is not None and row.last_year < t.year - RETIRED_AFTER_YEARS:
        notes.append(f"retired colour (last set {row.last_year})")
    if row.sets < RARE_SETS:
        notes.append(f"rare colour ({row.sets} sets)")
    return "; ".join(notes)


def unavailable(model) -> dict[tuple[str, int], int]:
    """``{(part_id, colour): count}`` of the model's bricks that are not real elements."""
    t = table()
    return {k: n for k, n in model.part_counts().items() if not t.available(k[0], k[1])}


# --------------------------------------------------------------------------------------------
# Nearest colour in which a part exists
# --------------------------------------------------------------------------------------------


@cache
def _lab(code: int) -> np.ndarray:
    return _palette_lab([code])[0]


#: How much further (CIEDE2000) a colour of the model's own palette may be than the nearest
#: colour overall and still be preferred when a brick must change colour: a k-colour model
#: keeps its k colours unless that would change the brick's colour much more.
PREFER_SLACK_DELTA_E = 10.0


def _best(part_id: str, code: int, pool) -> tuple[int, float] | None:
    t = table()
    cands = [c for c in pool if c in LDRAW_COLORS and t.available(part_id, c)]
    if not cands:
        return None
    d = palette_distances(_lab(int(code))[None, :], cands)[0]
    k = int(np.argmin(d))
    return int(cands[k]), float(d[k])


@cache
def nearest_available(
    part_id: str, code: int, prefer: tuple[int, ...] = (), strict: bool = False
) -> int | None:
    """The colour nearest to ``code`` (CIEDE2000) in which ``part_id`` exists, among
    :data:`ELEMENT_PALETTE` (else among every colour); a colour of ``prefer`` (the palette the
    model was made from) instead when it is at most :data:`PREFER_SLACK_DELTA_E` further, or
    at any distance when ``strict`` (a palette the caller asked for). ``None`` when the part
    exists in no colour."""
    t = table()
    if t.available(part_id, code):
        return int(code)
    best = _best(part_id, code, ELEMENT_PALETTE) or _best(part_id, code, tuple(t.colours))
    if best is None:
        return None
    own = _best(part_id, code, prefer)
    if own is not None and (strict or own[1] <= best[1] + PREFER_SLACK_DELTA_E):
        return own[0]
    return best[0]


def colour_difference(a: int, b: int) -> float:
    """CIEDE2000 between two LDraw colours."""
    return float(palette_distances(_lab(int(a))[None, :], [int(b)])[0, 0])


# --------------------------------------------------------------------------------------------
# Splitting a footprint into parts that exist in its colour
# --------------------------------------------------------------------------------------------


def _lengths(width: int, height: int, code: int) -> list[int]:
    """Lengths of ``width``-wide parts of ``height`` plates that exist in ``code``, longest
    first."""
    t = table()
    out = set()
    for length in range(1, 13):
        p = find(width, length, height)
        if p is not None and (width <= length or width == 2) and t.available(p.id, code):
            out.add(length)
    return sorted(out, reverse=True)


def _compose(n: int, lengths: list[int]) -> list[int] | None:
    """Fewest pieces of ``lengths`` summing to ``n`` (longest first), or ``None``."""
    best: list[list[int] | None] = [[]] + [None] * n
    for i in range(1, n + 1):
        for length in lengths:
            prev = best[i - length] if length <= i else None
            if prev is not None and (best[i] is None or len(prev) + 1 < len(best[i])):  # type: ignore[arg-type]
                best[i] = prev + [length]
    res = best[n]
    return sorted(res, reverse=True) if res is not None else None


def split_footprint(
    nx: int, ny: int, height: int, code: int, flip: bool = False
) -> list[tuple[int, int, int, int]]:
    """``[(dx, dy, sx, sy), ...]`` tiling an ``nx × ny`` footprint with parts of ``height``
    plates that exist in ``code`` (fewest pieces; full width first, then rows of one stud,
    the second row's seams shifted where it can; ``flip`` lays the pieces in the reverse
    order, moving the seams); ``[]`` when no tiling exists."""
    along_x = nx >= ny
    length, width = (nx, ny) if along_x else (ny, nx)

    def place(off_w: int, w: int, comp: list[int]) -> list[tuple[int, int, int, int]]:
        out, pos = [], 0
        for seg in comp:
            out.append((pos, off_w, seg, w) if along_x else (off_w, pos, w, seg))
            pos += seg
        return out

    comp = _compose(length, _lengths(width, height, code))
    if comp is not None:
        return place(0, width, comp[::-1] if flip else comp)
    if width == 2:
        one = _compose(length, _lengths(1, height, code))
        if one is not None:
            a, b = (one[::-1], one) if flip else (one, one[::-1])
            return place(0, 1, a) + place(1, 1, b)
    return []


def _split(asm, i: int, code: int, n_before: int) -> bool:
    """Re-tile brick ``i`` in its colour with real elements (pieces in either order) if that
    leaves the bricks in no more than ``n_before`` pieces; whether it did."""
    from .merge import Rects, trial

    x0, y0, z0, h = asm.x[i], asm.y[i], asm.z[i], asm.h[i]
    tried = []
    for flip in (False, True):
        tiles = split_footprint(asm.nx[i], asm.ny[i], h, code, flip)
        if not tiles or tiles in tried:
            continue
        tried.append(tiles)
        with trial(asm, [i]) as tr:
            asm.remove([i])
            a = np.asarray(tiles, dtype=np.int64)
            rects = Rects(x0 + a[:, 0], y0 + a[:, 1], a[:, 2], a[:, 3], np.full(len(a), code))
            tr.new += asm.add(rects, z0, h).tolist()
            tr.keep = asm.components()[0] <= n_before
        if tr.keep:
            return True
    return False


def enforce(
    asm, strategy: str = "split", prefer: tuple[int, ...] = (), strict: bool = False
) -> dict:
    """Make every brick of a :class:`~image2lego.lego.merge.Assembly` a real element.

    ``"split"``: a brick whose part does not exist in its colour is re-tiled in that colour
    with parts that do, kept only when the bricks stay in no more pieces than before (a
    :func:`~image2lego.lego.merge.trial`); otherwise, and with ``"recolour"`` always, the
    brick takes the nearest colour in which its part exists (:func:`nearest_available`: one
    of ``prefer``, the model's palette, unless that is much further and not ``strict``).
    Returns what was changed (plain JSON): ``{"strategy", "split", "recoloured",
    "recoloured_visible_cells", "mean_delta_e", "max_delta_e", "unavailable_left"}`` (colour
    differences: CIEDE2000 over the recoloured bricks).
    """
    from .merge import _LUT_PART, PART_IDS

    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    t = table()
    n_split = n_recol = vis_cells = 0
    delta: list[float] = []
    vis = None
    bad = [
        i
        for i in range(len(asm.x))
        if asm.alive[i]
        and not t.available(PART_IDS[_LUT_PART[asm.h[i], asm.nx[i], asm.ny[i]]], asm.color[i])
    ]
    n_before = asm.components()[0] if bad and strategy == "split" else 0
    left = 0
    for i in bad:
        pid = PART_IDS[_LUT_PART[asm.h[i], asm.nx[i], asm.ny[i]]]
        code = int(asm.color[i])
        if strategy == "split" and _split(asm, i, code, n_before):
            n_split += 1
            continue
        new = nearest_available(pid, code, tuple(prefer), strict)
        if new is None:
            left += 1
            continue
        if vis is None:
            from .merge import surface_cells

            vis = surface_cells(asm.lab >= 0)
        vis_cells += int(vis[asm.cells_of(i)].sum())
        delta.append(colour_difference(code, new))
        asm.color[i] = new
        n_recol += 1
    return {
        "strategy": strategy,
        "split": n_split,
        "recoloured": n_recol,
        "recoloured_visible_cells": vis_cells,
        "mean_delta_e": float(np.mean(delta)) if delta else 0.0,
        "max_delta_e": float(np.max(delta)) if delta else 0.0,
        "unavailable_left": left,
    }


def recolour_model(model, prefer: tuple[int, ...] | None = None):
    """A :class:`~image2lego.lego.bricks.BrickModel` whose every brick is a real element:
    each brick that is not takes the nearest colour its part exists in (no brick moves, so
    connectivity and stability are unchanged), preferring ``prefer`` (default: the model's
    own colours). Returns ``(model, n_recoloured)``."""
    import dataclasses

    t = table()
    if prefer is None:
        prefer = tuple(sorted({b.color for b in model.bricks}))
    out, n = [], 0
    for b in model.bricks:
        if not t.available(b.part_id, b.color):
            new = nearest_available(b.part_id, b.color, tuple(prefer))
            if new is not None:
                b = dataclasses.replace(b, color=new)
                n += 1
        out.append(b)
    if not n:
        return model, 0
    return model.derive(out), n


__all__ = [
    "ELEMENT_PALETTE",
    "RARE_SETS",
    "RETIRED_AFTER_YEARS",
    "STRATEGIES",
    "TABLE_PATH",
    "ColourElements",
    "ElementTable",
    "available",
    "enforce",
    "nearest_available",
    "rarity",
    "recolour_model",
    "split_footprint",
    "table",
    "unavailable",
]

"""Parts lists: a plain CSV, a BrickLink wanted-list XML and a Rebrickable CSV.

BrickLink and Rebrickable number colours differently from LDraw; the ids come from
``lego/data/bricklink_colors.csv`` via :mod:`.colors`. A colour whose id is unknown is never
guessed: the exporters raise :class:`UnmappedColorError` naming the colours and how many parts
use them, unless ``skip_unknown=True`` (the caller then reports :func:`unmapped_colors`).
To get a fully orderable model, quantise with ``palette=colors.BRICKLINK_PALETTE``.

The plain CSV's ``availability`` column and the BrickLink list's ``<REMARKS>`` say when an
element is hard to buy (:func:`image2lego.lego.elements.rarity`: a retired or rare colour, or
a part × colour that is not a LEGO element at all); Rebrickable's import takes only its three
columns, so its CSV stays as it is.
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path
from xml.sax.saxutils import escape

from .bricks import BrickModel
from .catalogue import ALL_PARTS
from .colors import LDRAW_COLORS, get
from .elements import rarity
from .errors import Image2LegoError
from .fileio import atomic_write_bytes

#: Our LDraw part number → BrickLink item number. For these basic bricks and plates the
#: numbers agree (BrickLink catalogues 3001, 3023, 2456, 3832, 2445 ... under the same
#: numbers); the table is explicit so that a part where they differ can be added.
#: LDraw 6141 (the mosaic's round 1x1 plate) is BrickLink's and Rebrickable's 4073.
BRICKLINK_PART: dict[str, str] = {pid: pid for pid in ALL_PARTS} | {"6141": "4073"}
#: Our LDraw part number → Rebrickable part number: identical (Rebrickable's parts table of
#: 2026 numbers the round 1x1 plate 6141, as LDraw does, and has no part 4073).
REBRICKABLE_PART: dict[str, str] = {pid: pid for pid in ALL_PARTS}

FORMATS = {"csv": "parts_csv", "bricklink": "bricklink_xml", "rebrickable": "rebrickable_csv"}


class UnmappedColorError(Image2LegoError, ValueError):
    """Some colours of the model have no id on the target service."""


def _part_key(pid: str) -> tuple[int, str]:
    m = re.match(r"\d+", pid)
    return (int(m.group()) if m else 1 << 30, pid)


def _rows(model: BrickModel) -> list[tuple[str, int, int]]:
    """Sorted ``(part_id, ldraw_colour, count)``; validates parts and colours."""
    counts = model.part_counts()
    for pid, color in counts:
        if pid not in ALL_PARTS:
            raise ValueError(f"part {pid!r} is not in the Image2LEGO catalogue")
        get(color)  # ValueError for non-solid / unknown codes
    keys = sorted(counts, key=lambda k: (_part_key(k[0]), k[1]))
    return [(pid, color, counts[(pid, color)]) for pid, color in keys]


def _csv(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def parts_csv(model: BrickModel) -> str:
    """``part,description,ldraw_color,color_name,availability,count``, sorted by part number
    then colour; ``availability`` is empty for a common element, else why it is hard to buy
    (the count stays the last column, as before the column was added)."""
    rows = [
        [pid, ALL_PARTS[pid].name, color, LDRAW_COLORS[color].name, rarity(pid, color), n]
        for pid, color, n in _rows(model)
    ]
    header = ["part", "description", "ldraw_color", "color_name", "availability", "count"]
    return _csv(header, rows)


def unmapped_colors(model: BrickModel, service: str = "bricklink") -> dict[int, int]:
    """``{ldraw_colour: number_of_parts}`` for colours without an id on ``service``."""
    attr = _service_attr(service)
    out: dict[int, int] = {}
    for _pid, color, n in _rows(model):
        if getattr(LDRAW_COLORS[color], attr) is None:
            out[color] = out.get(color, 0) + n
    return out


def _service_attr(service: str) -> str:
    if service not in ("bricklink", "rebrickable"):
        raise ValueError(f"service must be 'bricklink' or 'rebrickable', got {service!r}")
    return f"{service}_id"


def _mapped_rows(model: BrickModel, service: str, skip_unknown: bool):
    missing = unmapped_colors(model, service)
    if missing and not skip_unknown:
        desc = ", ".join(
            f"{c} {LDRAW_COLORS[c].name} ({n} part{'s' * (n != 1)})" for c, n in missing.items()
        )
        raise UnmappedColorError(
            f"no {service} colour id is known for LDraw colour(s) {desc}; "
            "pass skip_unknown=True to leave those parts out, or quantise the model with "
            "palette=colors.BRICKLINK_PALETTE"
        )
    attr = _service_attr(service)
    return [
        (pid, getattr(LDRAW_COLORS[c], attr), n, rarity(pid, c))
        for pid, c, n in _rows(model)
        if c not in missing
    ]


def bricklink_xml(model: BrickModel, skip_unknown: bool = False) -> str:
    """A BrickLink wanted-list upload (``<INVENTORY><ITEM>…``) with BrickLink colour ids."""
    lines = ["<INVENTORY>"]
    for pid, color, n, note in _mapped_rows(model, "bricklink", skip_unknown):
        lines += [
            "<ITEM>",
            "<ITEMTYPE>P</ITEMTYPE>",
            f"<ITEMID>{escape(BRICKLINK_PART[pid])}</ITEMID>",
            f"<COLOR>{int(color)}</COLOR>",
            f"<MINQTY>{int(n)}</MINQTY>",
        ]
        if note:
            lines.append(f"<REMARKS>{escape(note)}</REMARKS>")
        lines.append("</ITEM>")
    lines.append("</INVENTORY>")
    return "\n".join(lines) + "\n"


def rebrickable_csv(model: BrickModel, skip_unknown: bool = False) -> str:
    """Rebrickable's part-list import CSV: ``Part,Color,Quantity`` with Rebrickable ids."""
    rows = [
        [REBRICKABLE_PART[pid], color, n]
        for pid, color, n, _note in _mapped_rows(model, "rebrickable", skip_unknown)
    ]
    return _csv(["Part", "Color", "Quantity"], rows)


def write_parts(
    model: BrickModel, path: str | os.PathLike, fmt: str = "csv", skip_unknown: bool = False
) -> Path:
    """Write one of :data:`FORMATS` atomically (temporary file + rename)."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {sorted(FORMATS)}, got {fmt!r}")
    if fmt == "csv":
        text = parts_csv(model)
    elif fmt == "bricklink":
        text = bricklink_xml(model, skip_unknown=skip_unknown)
    else:
        text = rebrickable_csv(model, skip_unknown=skip_unknown)
    return atomic_write_bytes(path, text.encode("utf-8"))


__all__ = [
    "BRICKLINK_PART",
    "FORMATS",
    "REBRICKABLE_PART",
    "UnmappedColorError",
    "bricklink_xml",
    "parts_csv",
    "rebrickable_csv",
    "unmapped_colors",
    "write_parts",
]

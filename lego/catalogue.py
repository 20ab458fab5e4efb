"""The brick catalogue: real LDraw part numbers with their true footprints and heights.

A part's footprint is ``(width, length)`` in studs with ``width <= length``; in LDraw's own
frame the long side runs along X. Heights are in plates (a brick is 3 plates).

Masses are approximate, from published weights of common elements (2x4 brick 2.3 g,
2x4 plate 0.95 g) scaled per stud: about 0.29 g per stud for bricks, 0.12 g for plates.
They feed the stability analysis, where only their ratios to the clutch capacity matter.
"""

from __future__ import annotations

from dataclasses import dataclass

from .units import PLATES_PER_BRICK

BRICK_MASS_G_PER_STUD = 0.29
PLATE_MASS_G_PER_STUD = 0.12


@dataclass(frozen=True)
class Part:
    """One catalogue part."""

    id: str  # LDraw part number, e.g. "3001"
    name: str  # LDraw description, e.g. "Brick  2 x  4"
    width: int  # studs, short side
    length: int  # studs, long side (along LDraw X when unrotated)
    height: int  # plates: 3 for a brick, 1 for a plate
    kind: str  # "brick" or "plate"

    @property
    def studs(self) -> int:
        return self.width * self.length

    @property
    def mass_g(self) -> float:
        per = BRICK_MASS_G_PER_STUD if self.kind == "brick" else PLATE_MASS_G_PER_STUD
        return per * self.studs

    @property
    def filename(self) -> str:
        return f"{self.id}.dat"


def _brick(pid: str, w: int, l: int) -> Part:  # noqa: E741
    return Part(pid, f"Brick {w:2d} x {l:2d}", w, l, PLATES_PER_BRICK, "brick")


def _plate(pid: str, w: int, l: int) -> Part:  # noqa: E741
    return Part(pid, f"Plate {w:2d} x {l:2d}", w, l, 1, "plate")


BRICKS: tuple[Part, ...] = (
    _brick("3005", 1, 1),
    _brick("3004", 1, 2),
    _brick("3622", 1, 3),
    _brick("3010", 1, 4),
    _brick("3009", 1, 6),
    _brick("3008", 1, 8),
    _brick("3003", 2, 2),
    _brick("3002", 2, 3),
    _brick("3001", 2, 4),
    _brick("2456", 2, 6),
    _brick("3007", 2, 8),
    _brick("3006", 2, 10),
)

PLATES: tuple[Part, ...] = (
    _plate("3024", 1, 1),
    _plate("3023", 1, 2),
    _plate("3623", 1, 3),
    _plate("3710", 1, 4),
    _plate("3666", 1, 6),
    _plate("3460", 1, 8),
    _plate("3022", 2, 2),
    _plate("3021", 2, 3),
    _plate("3020", 2, 4),
    _plate("3795", 2, 6),
    _plate("3034", 2, 8),
    _plate("3832", 2, 10),
    _plate("2445", 2, 12),
)

CATALOGUE: dict[str, Part] = {p.id: p for p in BRICKS + PLATES}

#: Parts only the 2D mosaic (:mod:`.mosaic`) uses: its 1×1 picture elements and its large base
#: plates. They are kept out of :data:`CATALOGUE` so the voxel merger never picks them; every
#: writer and analysis looks parts up in :data:`ALL_PARTS`. A tile has no stud on top.
MOSAIC_PARTS: tuple[Part, ...] = (
    Part("3070b", "Tile  1 x  1 with Groove", 1, 1, 1, "tile"),
    Part("98138", "Tile  1 x  1 Round", 1, 1, 1, "tile"),
    Part("6141", "Plate  1 x  1 Round", 1, 1, 1, "plate"),  # BrickLink / Rebrickable 4073
    Part("3031", "Plate  4 x  4", 4, 4, 1, "plate"),
    Part("3035", "Plate  4 x  8", 4, 8, 1, "plate"),
    Part("41539", "Plate  8 x  8", 8, 8, 1, "plate"),
)

ALL_PARTS: dict[str, Part] = {**CATALOGUE, **{p.id: p for p in MOSAIC_PARTS}}


def part(pid: str) -> Part:
    """Look a part up by LDraw number; raise a clear ``KeyError`` for unknown ids."""
    try:
        return ALL_PARTS[pid]
    except KeyError:
        raise KeyError(f"part {pid!r} is not in the Image2LEGO catalogue") from None


def parts_of_height(height: int) -> tuple[Part, ...]:
    """All parts whose height in plates is ``height`` (1 plates, 3 bricks)."""
    return tuple(p for p in CATALOGUE.values() if p.height == height)


def find(width: int, length: int, height: int) -> Part | None:
    """The part with this footprint (either order) and height, or ``None``."""
    w, l = sorted((width, length))  # noqa: E741
    for p in CATALOGUE.values():
        if p.width == w and p.length == l and p.height == height:
            return p
    return None

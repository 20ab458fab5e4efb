"""The brick list: the one data type between the LEGO algorithm and everything after it.

Coordinates are integers on the LEGO lattice with Z up:

* ``x``, ``y``: the stud cell of the brick's minimum corner (studs);
* ``z``: the bottom of the brick, in plates above the ground (the base plate top);
* ``rotated``: ``False`` when the part's long side runs along +x, ``True`` along +y.

A :class:`BrickModel` is a list of bricks plus what was used to make it; helpers give
footprints, occupancy and per-layer groupings. Conversions to LDraw or Blender units go
through :mod:`image2lego.lego.units`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .catalogue import Part, part

if TYPE_CHECKING:
    from .convert import ConvertOptions


@dataclass(frozen=True, order=True)
class Brick:
    z: int
    y: int
    x: int
    part_id: str
    rotated: bool = False
    color: int = 71  # LDraw colour code (71 = Light Bluish Grey)
    step: int = 0  # build step this brick belongs to (0-based)

    @property
    def part(self) -> Part:
        return part(self.part_id)

    @property
    def size(self) -> tuple[int, int]:
        """Footprint ``(nx, ny)`` in studs."""
        p = self.part
        return (p.width, p.length) if self.rotated else (p.length, p.width)

    @property
    def height(self) -> int:
        """Height in plates."""
        return self.part.height

    @property
    def top(self) -> int:
        return self.z + self.height

    def cells(self) -> list[tuple[int, int]]:
        nx, ny = self.size
        return [(self.x + i, self.y + j) for i in range(nx) for j in range(ny)]


@dataclass
class BrickModel:
    """Bricks plus provenance. ``shape`` is the occupied lattice ``(nx, ny, n_plates)``.

    ``options``: the :class:`~image2lego.lego.convert.ConvertOptions` the converter built it
    with (``None`` for a model from elsewhere, e.g. read from LDraw); repair and stability
    read them from here. ``meta`` holds JSON-ready provenance for reports (its ``"options"``
    is the same options as a dict, for report.json and for models stored as JSON)."""

    bricks: list[Brick]
    shape: tuple[int, ...]  # (nx, ny, nz)
    meta: dict = field(default_factory=dict)
    options: ConvertOptions | None = None

    def derive(self, bricks: Iterable[Brick], meta: dict | None = None) -> BrickModel:
        """The same model (lattice, build options; a copy of ``meta`` unless one is given)
        with other bricks: what every stage that changes bricks returns."""
        return BrickModel(
            list(bricks), self.shape, dict(self.meta) if meta is None else meta, self.options
        )

    def __len__(self) -> int:
        return len(self.bricks)

    def occupancy(self) -> np.ndarray:
        """Bool array ``[x, y, plate]`` marking every plate-high cell a brick fills."""
        occ = np.zeros(self.shape, dtype=bool)
        for b in self.bricks:
            nx, ny = b.size
            occ[b.x : b.x + nx, b.y : b.y + ny, b.z : b.z + b.height] = True
        return occ

    def part_counts(self) -> dict[tuple[str, int], int]:
        """``{(part_id, colour): count}``."""
        out: dict[tuple[str, int], int] = {}
        for b in self.bricks:
            out[(b.part_id, b.color)] = out.get((b.part_id, b.color), 0) + 1
        return out

    def n_steps(self) -> int:
        return 1 + max((b.step for b in self.bricks), default=-1)

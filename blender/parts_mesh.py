"""Part meshes: one shared Blender mesh per catalogue part, in metres, with studs.

Dimensions come from :mod:`image2lego.lego.units` (1 stud = 8 mm, 1 plate = 3.2 mm, stud
4.8 mm across and 1.6 mm tall). Real LEGO elements are made 0.1 mm short of the grid on each
side so neighbours do not touch; we model that clearance (:data:`CLEARANCE_MM`) so bricks
read as separate pieces in renders. The height is the full nominal height: bricks stack
exactly.

The mesh origin is the centre of the footprint at the bottom face; unrotated, the long side
runs along +X (the LDraw convention used by :class:`~image2lego.lego.bricks.Brick`).
"""

from __future__ import annotations

import math

import bpy

from ..lego.catalogue import Part, part
from ..lego.units import CLEARANCE_MM, PLATE_MM, STUD_DIAMETER_MM, STUD_HEIGHT_MM, STUD_MM

M_PER_MM = 0.001
#: Segments around a stud's circumference.
STUD_SEGMENTS = 16
#: Custom property that marks a mesh as an Image2LEGO part mesh (value: LDraw part id).
PART_KEY = "i2l_part"


def part_size_m(p: Part) -> tuple[float, float, float]:
    """Body size ``(x, y, z)`` in metres of an unrotated part, without studs."""
    sx = (p.length * STUD_MM - 2 * CLEARANCE_MM) * M_PER_MM
    sy = (p.width * STUD_MM - 2 * CLEARANCE_MM) * M_PER_MM
    sz = p.height * PLATE_MM * M_PER_MM
    return sx, sy, sz


def part_bounds_m(p: Part) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Expected bounding box ``(min, max)`` of the part mesh, studs included, in metres."""
    sx, sy, sz = part_size_m(p)
    top = sz + STUD_HEIGHT_MM * M_PER_MM
    return (-sx / 2, -sy / 2, 0.0), (sx / 2, sy / 2, top)


def _part_geometry(p: Part):
    """Vertices and faces of a box body plus one capped cylinder per stud."""
    sx, sy, sz = part_size_m(p)
    hx, hy = sx / 2, sy / 2
    verts = [
        (-hx, -hy, 0.0),
        (hx, -hy, 0.0),
        (hx, hy, 0.0),
        (-hx, hy, 0.0),
        (-hx, -hy, sz),
        (hx, -hy, sz),
        (hx, hy, sz),
        (-hx, hy, sz),
    ]
    faces = [
        (0, 3, 2, 1),  # bottom (normal -Z)
        (4, 5, 6, 7),  # top
        (0, 1, 5, 4),
        (1, 2, 6, 5),
        (2, 3, 7, 6),
        (3, 0, 4, 7),
    ]
    r = STUD_DIAMETER_MM / 2 * M_PER_MM
    h = STUD_HEIGHT_MM * M_PER_MM
    pitch = STUD_MM * M_PER_MM
    n = STUD_SEGMENTS
    ring = [(math.cos(2 * math.pi * k / n), math.sin(2 * math.pi * k / n)) for k in range(n)]
    for i in range(p.length):
        for j in range(p.width):
            cx = -hx + CLEARANCE_MM * M_PER_MM + (i + 0.5) * pitch
            cy = -hy + CLEARANCE_MM * M_PER_MM + (j + 0.5) * pitch
            base = len(verts)
            verts += [(cx + r * c, cy + r * s, sz) for c, s in ring]
            verts += [(cx + r * c, cy + r * s, sz + h) for c, s in ring]
            for k in range(n):
                k2 = (k + 1) % n
                faces.append((base + k, base + k2, base + n + k2, base + n + k))
            faces.append(tuple(base + n + k for k in range(n)))  # cap
    return verts, faces


def mesh_name(part_id: str) -> str:
    p = part(part_id)
    return f"LEGO {p.id} {p.name.replace('  ', ' ')}"


def new_part_mesh(part_id: str) -> bpy.types.Mesh:
    """A fresh mesh for ``part_id`` with one empty material slot (filled per object)."""
    p = part(part_id)
    verts, faces = _part_geometry(p)
    me = bpy.data.meshes.new(mesh_name(part_id))
    me.from_pydata(verts, [], faces)
    me.validate(clean_customdata=False)
    me.update()
    # One slot so each object can link its own colour material (slot link = 'OBJECT').
    me.materials.append(None)
    me[PART_KEY] = p.id
    return me


def get_part_mesh(part_id: str) -> bpy.types.Mesh:
    """The shared mesh for ``part_id``, created on first use."""
    for me in bpy.data.meshes:
        if me.get(PART_KEY) == part_id and me.library is None:
            return me
    return new_part_mesh(part_id)

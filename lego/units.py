"""LEGO dimensions: the one module that owns units.

Everything else in the project converts between grid cells, LDraw units (LDU) and
millimetres through the constants and helpers here.

Facts (LDraw spec, "LDraw units"): 1 LDU = 0.4 mm; the stud pitch is 20 LDU (8 mm); a
brick is 24 LDU (9.6 mm) tall without its stud, a plate 8 LDU (3.2 mm); a stud stands
4 LDU (1.6 mm) proud and is 12 LDU (4.8 mm) across.
"""

from __future__ import annotations

MM_PER_LDU = 0.4
STUD_LDU = 20  # horizontal pitch of one stud
PLATE_LDU = 8  # height of one plate
BRICK_LDU = 24  # height of one brick
PLATES_PER_BRICK = BRICK_LDU // PLATE_LDU  # 3
STUD_HEIGHT_LDU = 4
STUD_DIAMETER_LDU = 12

STUD_MM = STUD_LDU * MM_PER_LDU  # 8.0
PLATE_MM = PLATE_LDU * MM_PER_LDU  # 3.2
BRICK_MM = BRICK_LDU * MM_PER_LDU  # 9.6
STUD_HEIGHT_MM = STUD_HEIGHT_LDU * MM_PER_LDU  # 1.6
STUD_DIAMETER_MM = STUD_DIAMETER_LDU * MM_PER_LDU  # 4.8

#: Clearance per side of a real LEGO element, mm: a 1x1 brick is 7.8 mm across, not 8, so
#: neighbours do not touch (the Blender part meshes and the instruction masks model it).
CLEARANCE_MM = 0.1

#: Height of one cubic voxel of side one stud, measured in plates (8 mm / 3.2 mm).
PLATES_PER_STUD_WIDTH = STUD_LDU / PLATE_LDU  # 2.5


def ldu_to_mm(v: float) -> float:
    return v * MM_PER_LDU


def mm_to_ldu(v: float) -> float:
    return v / MM_PER_LDU


def studs_to_mm(n: float) -> float:
    return n * STUD_MM


def plates_to_mm(n: float) -> float:
    return n * PLATE_MM


def studs_to_ldu(n: float) -> float:
    return n * STUD_LDU


def plates_to_ldu(n: float) -> float:
    return n * PLATE_LDU

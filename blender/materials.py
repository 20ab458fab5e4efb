"""Materials: one plastic-like Principled BSDF per LEGO colour, and a stress colour ramp.

LDraw colours are sRGB; Blender's shader sockets and ``diffuse_color`` are linear, so colours
are converted with the sRGB transfer function. ``diffuse_color`` is what Workbench (solid
mode, "Material" colouring) shows, so instruction renders and the viewport match Cycles/EEVEE.
"""

from __future__ import annotations

import bpy

from ..lego import colors as lego_colors

#: Custom property marking a material as an Image2LEGO colour material (value: LDraw code).
COLOR_KEY = "i2l_color"
#: Custom property marking a stress-ramp material (value: bin index).
STRESS_KEY = "i2l_stress_bin"

#: Stress bins: upper bounds of each bin's score; the last bin is "would come apart" (> 1).
STRESS_BOUNDS = (0.25, 0.5, 0.75, 1.0, float("inf"))
#: sRGB colours of the bins: green → yellow → orange → red, magenta for failing bricks.
STRESS_RGB = (
    (0.10, 0.65, 0.20),
    (0.60, 0.80, 0.10),
    (1.00, 0.80, 0.05),
    (1.00, 0.40, 0.05),
    (0.85, 0.00, 0.60),
)
STRESS_LABELS = ("≤ 0.25", "≤ 0.5", "≤ 0.75", "≤ 1", "> 1 (fails)")

_FALLBACK_RGB = (0.63, 0.65, 0.64)  # Light Bluish Grey


def srgb_to_linear(c: float) -> float:
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def color_info(code: int) -> tuple[str, tuple[float, float, float]]:
    """Name and sRGB of an LDraw colour code (unknown codes get a neutral grey)."""
    c = lego_colors.LDRAW_COLORS.get(int(code))
    if c is None:
        return f"Colour {code}", _FALLBACK_RGB
    return c.name, tuple(c.rgb)


def _setup_plastic(mat: bpy.types.Material, rgb_srgb) -> None:
    lin = tuple(srgb_to_linear(c) for c in rgb_srgb)
    mat.diffuse_color = (*lin, 1.0)
    mat.roughness = 0.3
    if mat.node_tree is None or bpy.app.version < (5, 1, 0):  # use_nodes: deprecated in 5.1
        mat.use_nodes = True
    bsdf = next((n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED"), None)
    if bsdf is None:  # pragma: no cover - default material always has one
        bsdf = mat.node_tree.nodes.new("ShaderNodeBsdfPrincipled")
    values = {
        "Base Color": (*lin, 1.0),
        "Roughness": 0.3,  # ABS injection-moulded plastic: glossy but not mirror-like
        "IOR": 1.54,  # ABS
        "Specular IOR Level": 0.5,
        "Coat Weight": 0.15,
        "Coat Roughness": 0.1,
    }
    for key, v in values.items():
        sock = bsdf.inputs.get(key)
        if sock is not None:
            sock.default_value = v


def get_color_material(code: int) -> bpy.types.Material:
    """The shared material for LDraw colour ``code``, created on first use."""
    code = int(code)
    for m in bpy.data.materials:
        if m.get(COLOR_KEY) == code and m.library is None:
            return m
    name, rgb = color_info(code)
    mat = bpy.data.materials.new(f"LEGO {name} [{code}]")
    _setup_plastic(mat, rgb)
    mat[COLOR_KEY] = code
    return mat


def stress_bin(score: float) -> int:
    for i, hi in enumerate(STRESS_BOUNDS):
        if score <= hi:
            return i
    return len(STRESS_BOUNDS) - 1


def get_stress_material(b: int) -> bpy.types.Material:
    """The shared material for stress bin ``b`` (see :data:`STRESS_BOUNDS`)."""
    for m in bpy.data.materials:
        if m.get(STRESS_KEY) == b and m.library is None:
            return m
    mat = bpy.data.materials.new(f"LEGO Stress {STRESS_LABELS[b]}")
    _setup_plastic(mat, STRESS_RGB[b])
    mat[STRESS_KEY] = b
    return mat

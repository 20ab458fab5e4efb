"""Voxels to LEGO: bricks, LDraw, parts lists, build steps and stability.

Pure numpy/scipy/scikit-learn. Never imports bpy or torch.
"""

from .bricks import Brick, BrickModel
from .catalogue import CATALOGUE, Part, part

__all__ = ["Brick", "BrickModel", "CATALOGUE", "Part", "part"]

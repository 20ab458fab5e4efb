"""The learned half: image preprocessing, the TL-Octree model, training, inference, rendering.

Uses torch; never imports bpy at import time.
"""

"""The runtime of the learned half: image preprocessing, the set-pose camera, the TL-Octree
model, its weights, inference, photo colouring and the photo → bricks pipeline.

Uses torch (inference only); never imports bpy at import time and never imports the training
stack (``image2lego.training``: datasets, the OpenGL renderer, the training loop).
"""

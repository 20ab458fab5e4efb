"""The research stack, apart from the runtime: datasets and the voxel cache (:mod:`.data`),
the OpenGL renderer of the training views (:mod:`.render`, pyrender/trimesh) and the training
loop (:mod:`.train`). Nothing in ``core/``, ``lego/`` or the Blender adapters imports it; the
Blender extension does not ship it.
"""

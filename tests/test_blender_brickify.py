"""Brickify Selected: a mesh object → LEGO through the lego/ pipeline, with its colours."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy")

import image2lego  # noqa: E402
from image2lego.blender import scene as lego_scene  # noqa: E402

from .conftest import shared_data_dir  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def addon():
    image2lego.register()
    yield
    image2lego.unregister()


@pytest.fixture()
def settings():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    s = bpy.context.scene.image2lego
    s.resolution = "8"
    s.repair = False
    return s


def _material(name, rgb):
    m = bpy.data.materials.new(name)
    m.diffuse_color = (*rgb, 1.0)
    if bpy.app.version < (5, 0, 0):
        m.use_nodes = True
    bsdf = m.node_tree.nodes.get("Principled BSDF") if m.node_tree else None
    if bsdf is not None:
        bsdf.inputs["Base Color"].default_value = (*rgb, 1.0)
    return m


def test_two_material_cube_gives_two_lego_colours(settings):
    bpy.ops.mesh.primitive_cube_add(size=0.08)
    ob = bpy.context.active_object
    ob.data.materials.append(_material("Red", (0.8, 0.0, 0.0)))
    ob.data.materials.append(_material("Blue", (0.0, 0.02, 0.6)))
    for poly in ob.data.polygons:  # top face blue, the others red
        poly.material_index = 1 if poly.normal.z > 0.5 else 0
    assert bpy.ops.image2lego.brickify_selected() == {"FINISHED"}
    coll = lego_scene.find_model_collection(bpy.context)
    model = lego_scene.model_from_collection(coll)
    assert len(model) > 0 and coll[lego_scene.MARK_KEY] == "Cube LEGO"
    assert len({b.color for b in model.bricks}) >= 2
    assert ob.name in bpy.data.objects  # the source mesh stays


def test_nothing_selected_is_a_clear_error(settings):
    from image2lego.blender import jobs

    assert not bpy.ops.image2lego.brickify_selected.poll()
    with pytest.raises(jobs.JobError, match="select one or more mesh objects"):
        jobs.brickify_steps(bpy.context)


def test_textured_mesh_takes_its_texture_colours(settings):
    data = shared_data_dir()
    obj = data / "textured_small" / "kaolin" / "fox.obj" if data else None
    if obj is None or not obj.is_file():
        pytest.skip("../shared/data/textured_small is not here")
    # 16³: at 8³ the fox is 13 bricks, and in colours that exist as real elements (Orange,
    # Very Light Orange, Reddish Brown) its small regions regularise away to one colour
    settings.resolution = "16"
    bpy.ops.wm.obj_import(filepath=str(obj))
    bpy.context.view_layer.objects.active = bpy.context.selected_objects[0]
    assert bpy.ops.image2lego.brickify_selected() == {"FINISHED"}
    model = lego_scene.model_from_collection(lego_scene.find_model_collection(bpy.context))
    # the fox is orange-brown and white: more than one colour, and not the default grey
    colors = {b.color for b in model.bricks}
    assert len(colors) >= 2 and colors != {71}


def test_update_model_brickifies_the_same_objects_again(settings):
    bpy.ops.mesh.primitive_cube_add(size=0.08)
    ob = bpy.context.active_object
    assert bpy.ops.image2lego.brickify_selected() == {"FINISHED"}
    coll = lego_scene.find_model_collection(bpy.context)
    assert lego_scene.get_source(coll) == {"kind": "brickify", "objects": [ob.name]}
    n8 = len(lego_scene.model_from_collection(coll))
    ob.select_set(False)  # Update Model selects the model's objects itself
    coll.image2lego.resolution = "16"
    bpy.context.view_layer.active_layer_collection = (
        bpy.context.view_layer.layer_collection.children[coll.name]
    )
    assert bpy.ops.image2lego.update_model() == {"FINISHED"}
    models = [c for c in bpy.data.collections if lego_scene.is_model_collection(c)]
    assert [c.name for c in models] == ["Cube LEGO"]  # the same model, rebuilt
    assert len(lego_scene.model_from_collection(models[0])) > n8  # at the new resolution

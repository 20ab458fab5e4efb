"""The scene builder in real Blender: part meshes, placement, steps, materials, clean removal."""

from __future__ import annotations

import numpy as np
import pytest

from image2lego.lego.bricks import Brick, BrickModel
from image2lego.lego.catalogue import CATALOGUE
from image2lego.lego.units import PLATE_MM, STUD_HEIGHT_MM, STUD_MM

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.bpy

from image2lego.blender import materials as mats  # noqa: E402
from image2lego.blender import parts_mesh  # noqa: E402
from image2lego.blender import scene as lego_scene  # noqa: E402

MODEL = BrickModel(
    [
        Brick(0, 0, 0, "3001", False, 4, 0),  # 2x4 brick along x
        Brick(0, 2, 0, "3010", False, 1, 0),  # 1x4 brick along x
        Brick(0, 0, 4, "3001", True, 14, 0),  # 2x4 brick along y
        Brick(3, 0, 1, "3020", True, 4, 1),  # 2x4 plate along y
        Brick(4, 1, 2, "3024", False, 15, 2),  # 1x1 plate
    ],
    (6, 4, 5),
    {"source": "hand-built", "voxels": 12},
)


def _fresh():
    bpy.ops.wm.read_factory_settings(use_empty=True)


def _counts():
    return {
        k: len(getattr(bpy.data, k))
        for k in ("objects", "meshes", "materials", "collections", "node_groups")
    }


def _orphans():
    out = []
    for k in ("objects", "meshes", "materials", "collections", "node_groups"):
        out += [f"{k}:{d.name}" for d in getattr(bpy.data, k) if d.users == 0]
    return out


def _expected_box(b: Brick, shape) -> tuple[np.ndarray, np.ndarray]:
    """World bounding box of a brick's body + studs, from the lattice (metres)."""
    nx, ny = b.size
    c = 0.1  # clearance per side, mm
    cx, cy = shape[0] * STUD_MM / 2, shape[1] * STUD_MM / 2
    lo = np.array([b.x * STUD_MM + c - cx, b.y * STUD_MM + c - cy, b.z * PLATE_MM])
    hi = np.array(
        [
            (b.x + nx) * STUD_MM - c - cx,
            (b.y + ny) * STUD_MM - c - cy,
            (b.z + b.height) * PLATE_MM + STUD_HEIGHT_MM,
        ]
    )
    return lo / 1000, hi / 1000


def _world_box(ob, matrix=None):
    m = np.array(matrix if matrix is not None else ob.matrix_world)
    v = np.array([vert.co[:] for vert in ob.data.vertices])
    w = v @ m[:3, :3].T + m[:3, 3]
    return w.min(axis=0), w.max(axis=0)


@pytest.mark.parametrize("pid", sorted(CATALOGUE))
def test_part_mesh_dimensions_equal_catalogue(pid):
    p = CATALOGUE[pid]
    me = parts_mesh.get_part_mesh(pid)
    v = np.array([vert.co[:] for vert in me.vertices])
    lo, hi = v.min(axis=0), v.max(axis=0)
    # Independent of parts_mesh's own helper: LEGO's nominal sizes minus 0.1 mm per side.
    size = np.array(
        [p.length * 8.0 - 0.2, p.width * 8.0 - 0.2, p.height * 3.2 + 1.6]
    )  # mm, studs on top
    np.testing.assert_allclose((hi - lo) * 1000, size, atol=1e-4)
    np.testing.assert_allclose(lo[:2], -(hi[:2]), atol=1e-7)  # centred footprint
    assert lo[2] == pytest.approx(0.0, abs=1e-9)
    # One stud per footprint cell: top-face vertices at stud height, 16 per stud.
    top = np.isclose(v[:, 2], hi[2], atol=1e-7)
    assert top.sum() == parts_mesh.STUD_SEGMENTS * p.studs
    assert me.get(parts_mesh.PART_KEY) == pid
    assert parts_mesh.get_part_mesh(pid) == me  # shared, not duplicated


@pytest.mark.parametrize("method", lego_scene.METHODS)
def test_build_places_every_brick_in_real_units(method):
    _fresh()
    coll = lego_scene.build_model(bpy.context, MODEL, name="T", method=method)
    dg = bpy.context.evaluated_depsgraph_get()
    boxes = []
    for inst in dg.object_instances:
        ob = inst.object
        if ob.type != "MESH" or not len(ob.data.polygons):
            continue
        boxes.append(_world_box(ob.original, inst.matrix_world))
    assert len(boxes) == len(MODEL.bricks)
    got = sorted((tuple(np.round(lo, 6)), tuple(np.round(hi, 6))) for lo, hi in boxes)
    want = sorted(
        (tuple(np.round(lo, 6)), tuple(np.round(hi, 6)))
        for lo, hi in (_expected_box(b, MODEL.shape) for b in MODEL.bricks)
    )
    np.testing.assert_allclose(np.array(got), np.array(want), atol=2e-6)
    assert coll.name in bpy.context.scene.collection.children


@pytest.mark.parametrize("method", lego_scene.METHODS)
def test_steps_parents_and_brick_properties(method):
    _fresh()
    coll = lego_scene.build_model(bpy.context, MODEL, name="T", method=method)
    parents = lego_scene.step_parents(coll)
    assert [p.name for p in parents] == ["Step 001", "Step 002", "Step 003"]
    assert [p[lego_scene.STEP_KEY] for p in parents] == [0, 1, 2]
    if method == "objects":
        obs = lego_scene.brick_objects(coll)
        assert len(obs) == len(MODEL.bricks)
        for ob, b in zip(obs, MODEL.bricks, strict=True):
            assert ob.parent == parents[b.step]
            assert (ob["i2l_step"], ob["i2l_part"], ob["i2l_color"]) == (b.step, b.part_id, b.color)
            assert ob.data.get(parts_mesh.PART_KEY) == b.part_id
            assert ob.material_slots[0].link == "OBJECT"
            assert ob.material_slots[0].material.get(mats.COLOR_KEY) == b.color
        # One shared mesh per part shape.
        assert len({ob.data.name for ob in obs}) == len({b.part_id for b in MODEL.bricks})
    else:
        seen = []
        for p in parents:
            n = len(p.data.vertices)
            idx = np.zeros(n, dtype=np.int32)
            p.data.attributes["i2l_index"].data.foreach_get("value", idx)
            seen += idx.tolist()
            assert all(MODEL.bricks[i].step == p["i2l_step"] for i in idx)
        assert sorted(seen) == list(range(len(MODEL.bricks)))


def test_one_plastic_material_per_colour():
    _fresh()
    lego_scene.build_model(bpy.context, MODEL, name="T")
    codes = {b.color for b in MODEL.bricks}
    found = {m[mats.COLOR_KEY]: m for m in bpy.data.materials if mats.COLOR_KEY in m}
    assert set(found) == codes
    for code, m in found.items():
        bsdf = next(n for n in m.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
        name, rgb = mats.color_info(code)
        lin = [mats.srgb_to_linear(c) for c in rgb]
        np.testing.assert_allclose(bsdf.inputs["Base Color"].default_value[:3], lin, atol=1e-6)
        np.testing.assert_allclose(m.diffuse_color[:3], lin, atol=1e-6)
        assert 0.1 <= bsdf.inputs["Roughness"].default_value <= 0.5
        assert name in m.name


@pytest.mark.parametrize("method", lego_scene.METHODS)
def test_model_round_trips_exactly(method):
    _fresh()
    coll = lego_scene.build_model(bpy.context, MODEL, name="T", method=method)
    back = lego_scene.model_from_collection(coll)
    assert back.bricks == MODEL.bricks
    assert back.shape == MODEL.shape
    assert back.meta == MODEL.meta
    assert lego_scene.find_model_collection(bpy.context) == coll
    st = lego_scene.get_stats(coll)
    assert (st["bricks"], st["parts"], st["colors"], st["layers"], st["steps"]) == (5, 4, 4, 3, 3)


def test_a_stored_model_keeps_its_typed_build_options():
    from image2lego.lego.convert import ConvertOptions, voxels_to_bricks

    _fresh()
    opts = ConvertOptions(hollow="shell", brick_types="plates", max_bricks_per_step=5)
    g = np.zeros((5, 5, 4), bool)
    g[1:4, 1:4, :] = True
    coll = lego_scene.build_model(bpy.context, voxels_to_bricks(g, options=opts), name="Opts")
    assert lego_scene.model_from_collection(coll).options == opts
    assert lego_scene.model_from_collection(lego_scene.build_model(
        bpy.context, MODEL, name="Plain")).options is None  # fmt: skip


@pytest.mark.parametrize("method", lego_scene.METHODS)
def test_replace_and_remove_leave_nothing_behind(method):
    _fresh()
    base = _counts()
    user_mat = bpy.data.materials.new("user material")
    user_mat.use_fake_user = True
    lego_scene.build_model(bpy.context, MODEL, name="T", method=method)
    first = _counts()
    smaller = BrickModel(MODEL.bricks[:2], MODEL.shape)
    lego_scene.build_model(bpy.context, smaller, name="T", method=method)
    coll = lego_scene.build_model(bpy.context, MODEL, name="T", method=method)
    assert _counts() == first
    assert _orphans() == []
    assert len(lego_scene.model_collections(bpy.context)) == 1
    # An object the user put into the model collection survives its removal.
    keep = bpy.data.objects.new("user empty", None)
    coll.objects.link(keep)
    lego_scene.remove_model(coll)
    assert keep.name in bpy.context.scene.collection.objects
    bpy.data.objects.remove(keep)
    assert user_mat.name in bpy.data.materials
    c = _counts()
    c["materials"] -= 1
    assert c == base
    assert _orphans() == []


def test_two_models_share_materials_safely():
    _fresh()
    a = lego_scene.build_model(bpy.context, MODEL, name="A")
    lego_scene.build_model(bpy.context, MODEL, name="B", method="geonodes")
    n = len(bpy.data.materials)
    lego_scene.remove_model(a)
    assert len(bpy.data.materials) == n  # still used by B
    b = lego_scene.find_model_collection(bpy.context)
    assert b.get(lego_scene.MARK_KEY) == "B"
    assert lego_scene.model_from_collection(b).bricks == MODEL.bricks


@pytest.mark.parametrize("method", lego_scene.METHODS)
def test_stress_display_and_back(method):
    _fresh()
    coll = lego_scene.build_model(bpy.context, MODEL, name="T", method=method)
    scores = np.array([0.1, 0.3, 0.6, 0.9, np.inf])
    lego_scene.set_display(coll, scores)
    assert coll[lego_scene.DISPLAY_KEY] == "stress"

    def shown():
        dg = bpy.context.evaluated_depsgraph_get()
        out = []
        for inst in dg.object_instances:
            ob = inst.object
            if ob.type == "MESH" and len(ob.data.polygons):
                m = ob.original.material_slots[0].material
                loc = tuple(np.round(np.array(inst.matrix_world)[:3, 3], 6))
                out.append((loc, m.get(mats.STRESS_KEY), m.get(mats.COLOR_KEY)))
        return sorted(out, key=lambda t: t[0])

    stress = shown()
    assert sorted(s for _, s, _ in stress) == [0, 1, 2, 3, 4]
    lego_scene.set_display(coll, None)
    colours = shown()
    assert sorted(c for _, _, c in colours) == sorted(b.color for b in MODEL.bricks)
    assert [loc for loc, _, _ in colours] == [loc for loc, _, _ in stress]
    with pytest.raises(ValueError, match="one stress score per brick"):
        lego_scene.set_display(coll, [0.5])


def test_bad_arguments_are_clear():
    _fresh()
    with pytest.raises(ValueError, match="instancing method"):
        lego_scene.build_model(bpy.context, MODEL, method="particles")
    with pytest.raises(TypeError, match="BrickModel"):
        lego_scene.build_model(bpy.context, [1, 2])
    c = bpy.data.collections.new("plain")
    with pytest.raises(ValueError, match="not an Image2LEGO model"):
        lego_scene.model_from_collection(c)


def _structure(coll):
    out = []
    for ob in sorted(coll.objects, key=lambda o: o.name):
        out.append(
            (
                ob.name,
                ob.parent.name if ob.parent else None,
                ob.data.name if ob.data else None,
                ob.material_slots[0].material.name if ob.material_slots else None,
                tuple(np.round(np.array(ob.matrix_world), 7).ravel()),
                ob.hide_viewport,
                ob.animation_data is not None and ob.animation_data.action is not None,
                tuple(sorted((k, str(ob[k])) for k in ob.keys())),
            )
        )
    return out


@pytest.mark.parametrize("first", [MODEL, BrickModel(MODEL.bricks[:2], MODEL.shape)])
def test_objects_rebuild_in_place_equals_fresh_build(first):
    other = BrickModel(
        [Brick(b.z, b.y, b.x, b.part_id, b.rotated, 0, b.step) for b in reversed(first.bricks)],
        first.shape,
    )
    _fresh()
    lego_scene.build_model(bpy.context, MODEL, name="T", method="objects")
    want = _structure(bpy.data.collections["T"])
    _fresh()
    coll = lego_scene.build_model(bpy.context, other, name="T", method="objects")
    # What animation / instructions might leave on the objects.
    p = lego_scene.step_parents(coll)[0]
    p.location.z = 1.0
    p.keyframe_insert("location", frame=1)
    lego_scene.brick_objects(coll)[0].hide_viewport = True
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    lego_scene.mark_owned(cam)
    coll.objects.link(cam)
    again = lego_scene.build_model(bpy.context, MODEL, name="T", method="objects")
    assert again == coll  # rebuilt in place
    assert _structure(again) == want
    assert _orphans() == []
    assert "cam" not in bpy.data.objects and "cam" not in bpy.data.cameras
    assert lego_scene.model_from_collection(again).bricks == MODEL.bricks


@pytest.mark.parametrize("method", lego_scene.METHODS)
def test_added_bricks_are_marked_and_selectable(method):
    from image2lego.lego.convert import voxels_to_bricks
    from image2lego.lego.join import added_bricks

    g = np.zeros((10, 10, 10), bool)
    g[1:3, 1:3, 0:4] = True  # a leg
    g[0:8, 0:4, 5:6] = True  # a top one cell above it: bridged
    model = voxels_to_bricks(g)
    want = added_bricks(model)
    assert want and len(want) < len(model.bricks)
    _fresh()
    coll = lego_scene.build_model(bpy.context, model, name="J", method=method)
    if method == "objects":
        marked = [ob["i2l_index"] for ob in lego_scene.brick_objects(coll) if ob["i2l_added"]]
        assert marked == want
    else:
        marked = []
        for p in lego_scene.step_parents(coll):
            n = len(p.data.vertices)
            idx, flag = np.zeros(n, np.int32), np.zeros(n, np.int32)
            p.data.attributes["i2l_index"].data.foreach_get("value", idx)
            p.data.attributes["i2l_added"].data.foreach_get("value", flag)
            marked += idx[flag == 1].tolist()
        assert sorted(marked) == want
    assert lego_scene.select_added(bpy.context, coll) == len(want)
    if method == "objects":
        chosen = [o["i2l_index"] for o in lego_scene.brick_objects(coll) if o.select_get()]
        assert chosen == want
    assert lego_scene.compute_stats(model)["added_bricks"] == len(want)

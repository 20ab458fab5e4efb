"""Build a :class:`~image2lego.lego.bricks.BrickModel` into the Blender scene.

One collection per model holds the bricks **organised by build step**: one parent per step
(named ``Step 001``, ``Step 002``, … with custom property ``i2l_step``) and every brick
belonging to its step's parent. Two instancing methods:

``"objects"``
    One object per brick, all sharing one mesh per part shape (linked data); the colour is an
    object-linked material (the mesh has one empty slot). Step parents are empties. Each brick
    object carries ``i2l_index``, ``i2l_step``, ``i2l_part`` and ``i2l_color``.
``"geonodes"``
    One point-mesh object per step (the step's "parent"), one vertex per brick with point
    attributes ``i2l_index``, ``i2l_proto``, ``i2l_rot``, ``i2l_color``, ``i2l_part`` (index
    into the collection's ``i2l_parts`` list); a geometry-nodes modifier instances prototype
    objects (one per part × colour, in a collection that is not linked to the scene) with
    *Instance on Points* / *Pick Instance*.

Placement: the part mesh origin is the footprint centre at its bottom face, so a brick sits at
``((x + nx/2)·8 mm, (y + ny/2)·8 mm, z·3.2 mm)`` minus the model's centre in x/y (the model
stands centred on the world origin, on the ground plane), rotated 90° about Z when
``rotated``.

The exact BrickModel is stored as JSON on the collection (``i2l_model``), so
:func:`model_from_collection` gives back the very model that was built and exports from the
scene are byte-identical to ``lego/``'s output for it.

Ownership: everything this module creates is recognisable (``i2l_*`` custom properties).
Replacing or removing a model deletes its objects, its step meshes and node group, and the
shared part meshes / colour materials only when nothing else uses them. Other code that adds
objects to a model collection and wants them removed with it marks them with
``obj[OWNED_KEY] = True`` (:func:`mark_owned`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, is_dataclass

import bpy
import numpy as np

from ..lego.bricks import Brick, BrickModel
from ..lego.convert import ConvertOptions
from ..lego.join import added_bricks
from ..lego.summary import ModelSummary, model_summary
from ..lego.units import PLATE_MM, STUD_MM
from . import materials as mats
from .parts_mesh import PART_KEY, get_part_mesh

METHODS = ("objects", "geonodes")
#: Chosen by benchmarks/bench_blender.py: geometry-node instancing builds ~20k bricks several
#: times faster, evaluates faster, replaces faster and saves a ~7x smaller .blend.
DEFAULT_METHOD = "geonodes"

#: Custom properties on the model collection.
MARK_KEY = "i2l_model_collection"  # marks a model collection (value: model name)
MODEL_KEY = "i2l_model"  # the BrickModel as JSON
META_KEY = "i2l_meta"  # the model metadata as JSON (also inside MODEL_KEY)
METHOD_KEY = "i2l_method"
STATS_KEY = "i2l_stats"  # JSON dict, see compute_stats
SOURCE_KEY = "i2l_source"  # JSON: what the model was built from (Update Model builds it again)
PARTS_KEY = "i2l_parts"  # list of part ids (geonodes: i2l_part attribute indexes it)
PROTO_COLL_KEY = "i2l_proto_collection"  # geonodes: the prototype collection
NODE_GROUP_KEY = "i2l_node_group"  # geonodes: the instancer node group
DISPLAY_KEY = "i2l_display"  # "colors" or "stress"
#: Custom property marking an object/ID as owned by a model collection (removed with it).
OWNED_KEY = "i2l_owned"
#: Custom property on step parents (0-based step index).
STEP_KEY = "i2l_step"
#: on each brick object (geonodes: a point attribute, 0/1): True where the brick fills cells
#: the build added to hold the model together (bridges, supports, props; lego.join)
ADDED_KEY = "i2l_added"
STEP_PARENT_KEY = "i2l_step_parent"

M = 0.001  # metres per millimetre


# --------------------------------------------------------------------------- serialisation


def _jsonable(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if is_dataclass(o) and not isinstance(o, type):
        return asdict(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    return str(o)


def model_to_json(model: BrickModel) -> str:
    """A compact, exact JSON form of ``model`` (bricks as ``[z, y, x, part, rot, color, step]``)."""
    data = {
        "shape": [int(v) for v in model.shape],
        "meta": model.meta,
        "bricks": [
            [b.z, b.y, b.x, b.part_id, int(b.rotated), b.color, b.step] for b in model.bricks
        ],
    }
    return json.dumps(data, default=_jsonable, separators=(",", ":"))


def model_from_json(text: str) -> BrickModel:
    data = json.loads(text)
    bricks = [
        Brick(int(z), int(y), int(x), str(p), bool(r), int(c), int(s))
        for z, y, x, p, r, c, s in data["bricks"]
    ]
    meta = dict(data.get("meta") or {})
    options = ConvertOptions.from_dict(meta.get("options"))  # the build options, typed again
    return BrickModel(bricks, tuple(int(v) for v in data["shape"]), meta, options)


# --------------------------------------------------------------------------- stats


def compute_stats(model: BrickModel, stability=None) -> ModelSummary:
    """The Stats panel's counts: :func:`lego.summary.model_summary`, the same keys as
    report.json (``connected`` is ``None`` when it cannot be computed)."""
    return model_summary(model, stability)


def get_stats(collection: bpy.types.Collection) -> dict:
    try:
        return json.loads(collection.get(STATS_KEY, "{}"))
    except (TypeError, ValueError):
        return {}


def set_stats(collection: bpy.types.Collection, stats: dict) -> None:
    collection[STATS_KEY] = json.dumps(stats, default=_jsonable)


def set_source(collection: bpy.types.Collection, source: dict | None) -> None:
    """Remember what the model was built from: ``{"kind": "image"}`` (the path is in its
    settings), ``{"kind": "voxels", "path": …}`` or ``{"kind": "brickify", "objects": […]}``."""
    if source is not None:
        collection[SOURCE_KEY] = json.dumps(source)


def get_source(collection: bpy.types.Collection) -> dict:
    """What :func:`set_source` stored; models built before it are image models."""
    try:
        src = json.loads(collection.get(SOURCE_KEY, ""))
    except (TypeError, ValueError):
        src = None
    return src if isinstance(src, dict) and "kind" in src else {"kind": "image"}


# --------------------------------------------------------------------------- lookup


def is_model_collection(coll) -> bool:
    return coll is not None and coll.get(MARK_KEY) is not None


def model_collections(context=None) -> list[bpy.types.Collection]:
    """Model collections linked into the scene (all model collections without a scene)."""
    scene = getattr(context, "scene", None) if context is not None else None
    if scene is None:
        return [c for c in bpy.data.collections if is_model_collection(c)]
    return [c for c in scene.collection.children_recursive if is_model_collection(c)]


def find_model_collection(context, name: str | None = None) -> bpy.types.Collection | None:
    """The model the user is working on: by ``name``, else the active object's model, else the
    most recently built model in the scene; ``None`` when there is none."""
    colls = model_collections(context)
    if name is not None:
        return next((c for c in colls if c.get(MARK_KEY) == name), None)
    ob = getattr(context, "active_object", None)
    if ob is not None:
        for c in ob.users_collection:
            if is_model_collection(c):
                return c
    if not colls:
        return None
    return max(colls, key=lambda c: c.get("i2l_serial", 0))


def step_parents(collection: bpy.types.Collection) -> list[bpy.types.Object]:
    """The step parents of a model, in step order."""
    obs = [o for o in collection.objects if o.get(STEP_PARENT_KEY)]
    return sorted(obs, key=lambda o: o[STEP_KEY])


def brick_objects(collection: bpy.types.Collection) -> list[bpy.types.Object]:
    """Brick objects (``"objects"`` method) in brick-index order; empty for geonodes."""
    obs = [o for o in collection.objects if "i2l_index" in o]
    return sorted(obs, key=lambda o: o["i2l_index"])


def model_from_collection(collection: bpy.types.Collection) -> BrickModel:
    """The BrickModel a collection was built from (exactly, from its stored JSON)."""
    if not is_model_collection(collection):
        raise ValueError(f"collection {collection.name!r} is not an Image2LEGO model")
    text = collection.get(MODEL_KEY)
    if not text:
        raise ValueError(f"collection {collection.name!r} has lost its stored brick model")
    return model_from_json(text)


# --------------------------------------------------------------------------- removal


def mark_owned(idblock) -> None:
    """Mark an ID (object, camera, …) as part of its model: removed with the model."""
    idblock[OWNED_KEY] = True


def _owned(ob) -> bool:
    return (
        "i2l_index" in ob
        or ob.get(STEP_PARENT_KEY)
        or ob.get(OWNED_KEY)
        or ob.get("i2l_proto") is not None
    )


def remove_model(collection: bpy.types.Collection) -> None:
    """Delete a model collection and everything it owns, and nothing else.

    Objects the model did not create are moved to the scene's master collection of every scene
    that showed them (when they are in no other collection), never deleted. An animated model's
    build animation is cleared first (actions, camera, the scene's frame range and camera).
    """
    from . import animation  # it imports this module

    scenes = [s for s in bpy.data.scenes if collection in s.collection.children_recursive]
    # its build animation first: the keyed actions would stay behind as orphans, and the
    # scene's frame range and camera go back to what they were before Animate Build
    animation.clear_animation(collection, scenes[0] if scenes else bpy.context.scene)
    colls = [collection, *collection.children_recursive]
    proto = collection.get(PROTO_COLL_KEY)
    if proto is not None:
        colls.append(proto)
    ng = collection.get(NODE_GROUP_KEY)

    objects: set = set()
    for c in colls:
        objects.update(c.objects)
    doomed = [o for o in objects if _owned(o)]
    keep = [o for o in objects if not _owned(o)]
    for o in keep:
        others = [c for c in o.users_collection if c not in colls]
        if not others:
            for s in scenes or bpy.data.scenes[:1]:
                s.collection.objects.link(o)
        for c in colls:
            if o.name in c.objects:
                c.objects.unlink(o)

    data = {o.data for o in doomed if o.data is not None}
    materials = set()
    for o in doomed:
        for slot in o.material_slots:
            if slot.material is not None:
                materials.add(slot.material)
    for d in data:
        for m in getattr(d, "materials", ()):
            if m is not None:
                materials.add(m)

    # Collections first: deleting objects that are still linked into a collection costs far
    # more per object in Blender 5.0 (measured: ~4x for 20k bricks).
    bpy.data.batch_remove(colls + ([ng] if ng is not None else []))
    bpy.data.batch_remove(doomed)
    # Shared data (part meshes, step meshes, colour materials) goes when nothing uses it.
    orphans = [d for d in data if d.users == 0]
    bpy.data.batch_remove(orphans)
    mats_orphans = [
        m
        for m in materials
        if m.users == 0
        and (m.get(mats.COLOR_KEY) is not None or m.get(mats.STRESS_KEY) is not None)
    ]
    bpy.data.batch_remove(mats_orphans)


# --------------------------------------------------------------------------- building


def _placements(model: BrickModel) -> tuple[np.ndarray, np.ndarray]:
    """World positions (metres, [n, 3]) and Z rotations (radians, [n]) of every brick."""
    n = len(model.bricks)
    pos = np.zeros((n, 3), dtype=np.float64)
    rot = np.zeros(n, dtype=np.float64)
    cx = model.shape[0] * STUD_MM * M / 2
    cy = model.shape[1] * STUD_MM * M / 2
    for i, b in enumerate(model.bricks):
        nx, ny = b.size
        pos[i] = (
            (b.x + nx / 2) * STUD_MM * M - cx,
            (b.y + ny / 2) * STUD_MM * M - cy,
            b.z * PLATE_MM * M,
        )
        rot[i] = math.pi / 2 if b.rotated else 0.0
    return pos, rot


def _step_name(s: int) -> str:
    return f"Step {s + 1:03d}"


def _copy_settings(context, collection) -> None:
    try:
        from .properties import copy_settings
    except ImportError:  # pragma: no cover
        return
    scene = getattr(context, "scene", None)
    src = getattr(scene, "image2lego", None) if scene is not None else None
    dst = getattr(collection, "image2lego", None)
    if src is not None and dst is not None:
        copy_settings(src, dst)


_serial = [0]


def build_model(
    context,
    model: BrickModel,
    name: str = "LEGO Model",
    method: str = DEFAULT_METHOD,
    replace: bool = True,
    stats: dict | None = None,
) -> bpy.types.Collection:
    """Build ``model`` into a new collection ``name`` linked to the scene; return it.

    With ``replace`` an existing model of the same name is removed first (see
    :func:`remove_model`). ``stats`` overrides :func:`compute_stats` (e.g. with stability
    figures from the pipeline).
    """
    if method not in METHODS:
        raise ValueError(f"instancing method must be one of {METHODS}, got {method!r}")
    if not isinstance(model, BrickModel):
        raise TypeError(f"expected a BrickModel, got {type(model).__name__}")
    scene = context.scene
    reuse = None
    if replace:
        # only this scene's models: a same-named model in another scene is not ours to delete
        olds = [c for c in model_collections(context) if c.get(MARK_KEY) == name]
        if (
            method == "objects"
            and olds
            and olds[0].get(METHOD_KEY) == "objects"
            and olds[0] in scene.collection.children_recursive
        ):
            # Deleting objects costs time quadratic in their number in Blender 5.0 (20k brick
            # objects: minutes), so an "objects" model is rebuilt in place, reusing them.
            reuse = olds.pop(0)
            from . import animation  # it imports this module

            animation.clear_animation(reuse, scene)  # as remove_model does
        for c in olds:
            remove_model(c)

    coll = reuse if reuse is not None else bpy.data.collections.new(name)
    coll[MARK_KEY] = name
    _serial[0] = max([_serial[0], *(c.get("i2l_serial", 0) for c in bpy.data.collections)])
    _serial[0] += 1
    coll["i2l_serial"] = _serial[0]
    coll[METHOD_KEY] = method
    coll[DISPLAY_KEY] = "colors"
    coll[MODEL_KEY] = model_to_json(model)
    coll[META_KEY] = json.dumps(model.meta, default=_jsonable)
    part_ids = sorted({b.part_id for b in model.bricks})
    coll[PARTS_KEY] = part_ids
    set_stats(coll, stats if stats is not None else compute_stats(model))
    if reuse is None:
        scene.collection.children.link(coll)
    _copy_settings(context, coll)

    n_steps = model.n_steps()
    pos, rot = _placements(model)
    if reuse is not None:
        _rebuild_objects(coll, model, n_steps, pos, rot)
    elif method == "objects":
        _build_objects(coll, model, n_steps, pos, rot)
    else:
        _build_geonodes(coll, model, n_steps, pos, rot, part_ids)
    return coll


def unique_model_name(context, name: str) -> str:
    """``name``, or ``name.001``, ``name.002`` … when the scene already has a model so named."""
    taken = {c.get(MARK_KEY) for c in model_collections(context)}
    if name not in taken:
        return name
    k = 1
    while f"{name}.{k:03d}" in taken:
        k += 1
    return f"{name}.{k:03d}"


LIGHT_KEY = "i2l_light"


def setup_scene(scene) -> list[str]:
    """Make an F12 render of a fresh scene look right; change only what is still default.

    A world (soft grey) when the scene has none, a key and a fill light when it has no light
    at all, and millimetres as the display unit while it is still metres (a model is ~10 cm).
    Returns what it changed."""
    changed = []
    if scene.world is None:
        world = bpy.data.worlds.new("LEGO World")
        world.color = (0.05, 0.05, 0.055)
        if hasattr(world, "use_nodes") and bpy.app.version < (5, 0, 0):
            world.use_nodes = True
        tree = getattr(world, "node_tree", None)
        bg = tree.nodes.get("Background") if tree is not None else None
        if bg is not None:
            bg.inputs["Color"].default_value = (0.6, 0.62, 0.65, 1.0)
            bg.inputs["Strength"].default_value = 0.6
        scene.world = world
        changed.append("world")
    if not any(o.type == "LIGHT" for o in scene.objects):
        for name, kind, energy, loc, rot in (
            ("LEGO Key Light", "SUN", 3.0, (0.3, -0.3, 0.4), (0.8, 0.0, 0.7)),
            ("LEGO Fill Light", "AREA", 20.0, (-0.3, -0.2, 0.25), (1.1, 0.0, -0.9)),
        ):
            light = bpy.data.lights.new(name, kind)
            light.energy = energy
            if kind == "AREA":
                light.size = 0.3
            ob = bpy.data.objects.new(name, light)
            ob.location, ob.rotation_euler = loc, rot
            ob[LIGHT_KEY] = True
            scene.collection.objects.link(ob)
        changed.append("lights")
    us = scene.unit_settings
    if us.system == "METRIC" and us.length_unit == "METERS" and abs(us.scale_length - 1) < 1e-9:
        us.length_unit = "MILLIMETERS"
        changed.append("millimetres")
    return changed


def _new_step_parent(s: int):
    e = bpy.data.objects.new(_step_name(s), None)
    e.empty_display_type = "PLAIN_AXES"
    e.empty_display_size = 0.004
    e[STEP_KEY] = s
    e[STEP_PARENT_KEY] = True
    return e


def _reset(ob) -> None:
    """Undo what other tools (animation, instructions) may have changed on a reused object.

    Only writes what differs: every RNA write on a linked object tags the depsgraph.
    """
    if ob.animation_data is not None:
        ob.animation_data_clear()
    if ob.rotation_mode != "XYZ":
        ob.rotation_mode = "XYZ"
    if tuple(ob.scale) != (1.0, 1.0, 1.0):
        ob.scale = (1.0, 1.0, 1.0)
    if ob.hide_viewport:
        ob.hide_viewport = False
    if ob.hide_render:
        ob.hide_render = False


def _rebuild_objects(coll, model, n_steps, pos, rot) -> None:
    """Rebuild an ``"objects"`` model in its own collection, reusing its objects."""
    old_bricks = brick_objects(coll)
    old_parents = step_parents(coll)
    others = [
        o
        for o in coll.objects
        if o.get(OWNED_KEY) and "i2l_index" not in o and not o.get(STEP_PARENT_KEY)
    ]
    old_mats = {
        sl.material for o in old_bricks for sl in o.material_slots if sl.material is not None
    }
    old_data = {o.data for o in old_bricks} | {o.data for o in others if o.data is not None}
    parents = []
    for s in range(n_steps):
        if s < len(old_parents):
            e = old_parents[s]
            _reset(e)
            e.location = (0.0, 0.0, 0.0)
            e.rotation_euler = (0.0, 0.0, 0.0)
            if e.parent is not None:
                e.parent = None
            if e.name != _step_name(s):
                e.name = _step_name(s)
            e[STEP_KEY] = s
        else:
            e = _new_step_parent(s)
            coll.objects.link(e)
        parents.append(e)
    reuse = old_bricks[: len(model.bricks)]
    for ob in reuse:
        _reset(ob)
    doomed = old_bricks[len(model.bricks) :] + old_parents[n_steps:] + others
    for o in doomed:
        coll.objects.unlink(o)
    bpy.data.batch_remove(doomed)
    _build_objects(coll, model, n_steps, pos, rot, parents=parents, reuse=reuse)
    bpy.data.batch_remove([d for d in old_data if d.users == 0])
    bpy.data.batch_remove(
        [m for m in old_mats if m.users == 0 and m.get(mats.COLOR_KEY) is not None]
    )


def _build_objects(coll, model, n_steps, pos, rot, parents=None, reuse=()) -> None:
    link = coll.objects.link
    if parents is None:
        parents = [_new_step_parent(s) for s in range(n_steps)]
        for e in parents:
            link(e)
    meshes = {pid: get_part_mesh(pid) for pid in {b.part_id for b in model.bricks}}
    added = set(added_bricks(model))
    materials = {c: mats.get_color_material(c) for c in {b.color for b in model.bricks}}
    new = bpy.data.objects.new
    n_reuse = len(reuse)
    bricks = model.bricks
    # New objects are created grouped by part mesh: creating objects whose meshes alternate
    # costs ~10x more CPU in Blender 5.0 (20k bricks: 8 s instead of 0.8 s, measured).
    order = list(range(n_reuse)) + sorted(
        range(n_reuse, len(bricks)), key=lambda i: bricks[i].part_id
    )
    for i in order:
        b = bricks[i]
        name = f"{b.part_id}.{i:05d}"
        if i < n_reuse:
            ob = reuse[i]
            if ob.data != meshes[b.part_id]:
                ob.data = meshes[b.part_id]
            if ob.name != name:
                ob.name = name
        else:
            ob = new(name, meshes[b.part_id])
        ob.location = pos[i]
        if rot[i] or i < n_reuse:
            ob.rotation_euler = (0.0, 0.0, rot[i])
        slot = ob.material_slots[0]
        slot.link = "OBJECT"
        slot.material = materials[b.color]
        if ob.parent != parents[b.step]:
            ob.parent = parents[b.step]
        if i < n_reuse and not ob.matrix_parent_inverse.is_identity:
            ob.matrix_parent_inverse.identity()
        ob["i2l_index"] = i
        ob["i2l_step"] = b.step
        ob["i2l_part"] = b.part_id
        ob["i2l_color"] = b.color
        ob[ADDED_KEY] = i in added
        if i >= n_reuse:
            link(ob)


def _instancer_group(name: str, protos: bpy.types.Collection) -> bpy.types.NodeTree:
    ng = bpy.data.node_groups.new(f"{name} instancer", "GeometryNodeTree")
    ng[OWNED_KEY] = True
    ng.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    ng.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    nodes, links = ng.nodes, ng.links
    gin = nodes.new("NodeGroupInput")
    gout = nodes.new("NodeGroupOutput")
    info = nodes.new("GeometryNodeCollectionInfo")
    info.transform_space = "ORIGINAL"
    info.inputs["Collection"].default_value = protos
    info.inputs["Separate Children"].default_value = True
    info.inputs["Reset Children"].default_value = True
    iop = nodes.new("GeometryNodeInstanceOnPoints")
    iop.inputs["Pick Instance"].default_value = True
    idx = nodes.new("GeometryNodeInputNamedAttribute")
    idx.data_type = "INT"
    idx.inputs["Name"].default_value = "i2l_proto"
    rot = nodes.new("GeometryNodeInputNamedAttribute")
    rot.data_type = "FLOAT"
    rot.inputs["Name"].default_value = "i2l_rot"
    comb = nodes.new("ShaderNodeCombineXYZ")
    links.new(gin.outputs[0], iop.inputs["Points"])
    links.new(info.outputs[0], iop.inputs["Instance"])
    links.new(idx.outputs["Attribute"], iop.inputs["Instance Index"])
    links.new(rot.outputs["Attribute"], comb.inputs["Z"])
    links.new(comb.outputs[0], iop.inputs["Rotation"])
    links.new(iop.outputs[0], gout.inputs[0])
    for k, n in enumerate((gin, info, idx, rot, comb, iop, gout)):
        n.location = (200 * k, 0)
    return ng


def _proto_name(prefix: str, k: int, pid: str, tag) -> str:
    # Collection Info "Separate Children" orders children alphabetically: the zero-padded
    # index keeps that order equal to the prototype index.
    return f"{prefix}{k:05d} {pid} {tag}"


def _new_proto(protos, prefix, k, pid, mat, tag) -> bpy.types.Object:
    ob = bpy.data.objects.new(_proto_name(prefix, k, pid, tag), get_part_mesh(pid))
    slot = ob.material_slots[0]
    slot.link = "OBJECT"
    slot.material = mat
    ob["i2l_proto"] = k
    protos.objects.link(ob)
    return ob


def _build_geonodes(coll, model, n_steps, pos, rot, part_ids) -> None:
    name = coll.name
    pairs = sorted({(b.part_id, b.color) for b in model.bricks})
    pair_index = {p: k for k, p in enumerate(pairs)}
    protos = bpy.data.collections.new(f"{name} parts")
    protos[OWNED_KEY] = True
    for k, (pid, col) in enumerate(pairs):
        _new_proto(protos, "c", k, pid, mats.get_color_material(col), col)
    coll[PROTO_COLL_KEY] = protos
    coll["i2l_n_color_protos"] = len(pairs)
    ng = _instancer_group(name, protos)
    coll[NODE_GROUP_KEY] = ng

    part_index = {p: k for k, p in enumerate(part_ids)}
    n = len(model.bricks)
    steps = np.fromiter((b.step for b in model.bricks), dtype=np.int64, count=n)
    proto = np.fromiter(
        (pair_index[(b.part_id, b.color)] for b in model.bricks), dtype=np.int32, count=n
    )
    color = np.fromiter((b.color for b in model.bricks), dtype=np.int32, count=n)
    part = np.fromiter((part_index[b.part_id] for b in model.bricks), dtype=np.int32, count=n)
    added = np.zeros(n, np.int32)
    added[added_bricks(model)] = 1
    order = np.argsort(steps, kind="stable")
    bounds = np.searchsorted(steps[order], np.arange(n_steps + 1))
    for s in range(n_steps):
        sel = order[bounds[s] : bounds[s + 1]]
        me = bpy.data.meshes.new(f"{name} {_step_name(s)}")
        me[OWNED_KEY] = True
        me.vertices.add(len(sel))
        me.vertices.foreach_set("co", pos[sel].astype(np.float32).ravel())
        for attr, dtype, values in (
            ("i2l_index", "INT", sel.astype(np.int32)),
            ("i2l_proto", "INT", proto[sel]),
            ("i2l_proto_color", "INT", proto[sel]),
            ("i2l_color", "INT", color[sel]),
            ("i2l_part", "INT", part[sel]),
            (ADDED_KEY, "INT", added[sel]),
            ("i2l_rot", "FLOAT", rot[sel].astype(np.float32)),
        ):
            a = me.attributes.new(attr, dtype, "POINT")
            a.data.foreach_set("value", values)
        me.update()
        ob = bpy.data.objects.new(_step_name(s), me)
        ob[STEP_KEY] = s
        ob[STEP_PARENT_KEY] = True
        mod = ob.modifiers.new("LEGO bricks", "NODES")
        mod.node_group = ng
        coll.objects.link(ob)


def select_added(context, collection: bpy.types.Collection) -> int:
    """Select the bricks the build added (``i2l_added``) and nothing else in ``collection``;
    return how many there are. A geometry-nodes model selects the step objects that hold
    them (single instances cannot be selected; the ``i2l_added`` point attribute marks
    them)."""

    def select(ob, state: bool) -> None:
        try:
            ob.select_set(state)
        except RuntimeError:  # not in the active view layer
            pass

    for o in collection.objects:
        select(o, False)
    if collection.get(METHOD_KEY, "objects") == "objects":
        hits = [o for o in brick_objects(collection) if o.get(ADDED_KEY)]
        for o in hits:
            select(o, True)
        return len(hits)
    n = 0
    for ob in step_parents(collection):
        a = ob.data.attributes.get(ADDED_KEY) if ob.data is not None else None
        if a is None:
            continue
        vals = np.zeros(len(ob.data.vertices), dtype=np.int32)
        a.data.foreach_get("value", vals)
        if vals.any():
            select(ob, True)
        n += int(vals.sum())
    return n


# --------------------------------------------------------------------------- display modes


def set_display(collection: bpy.types.Collection, scores=None) -> None:
    """Colour bricks by stress (``scores``: one per brick) or, with ``None``, by LEGO colour."""
    model = model_from_collection(collection)
    if scores is not None:
        scores = np.asarray(scores, dtype=float)
        if scores.shape != (len(model.bricks),):
            raise ValueError(
                f"need one stress score per brick ({len(model.bricks)}), got {scores.shape}"
            )
        bins = [mats.stress_bin(s) for s in scores]
    method = collection.get(METHOD_KEY, "objects")
    if method == "objects":
        obs = brick_objects(collection)
        cache: dict = {}
        for ob in obs:
            i = ob["i2l_index"]
            if scores is None:
                key = ("c", ob["i2l_color"])
                if key not in cache:
                    cache[key] = mats.get_color_material(ob["i2l_color"])
            else:
                key = ("s", bins[i])
                if key not in cache:
                    cache[key] = mats.get_stress_material(bins[i])
            ob.material_slots[0].material = cache[key]
    else:
        _set_display_geonodes(collection, model, None if scores is None else bins)
    collection[DISPLAY_KEY] = "colors" if scores is None else "stress"


def _set_display_geonodes(collection, model, bins) -> None:
    protos = collection[PROTO_COLL_KEY]
    n_color = int(collection["i2l_n_color_protos"])
    if bins is not None:
        existing = {
            (o["i2l_part_id"], o["i2l_bin"]): o["i2l_proto"]
            for o in protos.objects
            if "i2l_bin" in o
        }
        need = sorted({(b.part_id, bins[i]) for i, b in enumerate(model.bricks)} - set(existing))
        k = n_color + len(existing)
        for pid, sb in need:
            ob = _new_proto(protos, "s", k, pid, mats.get_stress_material(sb), f"stress{sb}")
            ob["i2l_part_id"] = pid
            ob["i2l_bin"] = sb
            existing[(pid, sb)] = k
            k += 1
    for ob in step_parents(collection):
        me = ob.data
        n = len(me.vertices)
        if bins is None:
            vals = np.zeros(n, dtype=np.int32)
            me.attributes["i2l_proto_color"].data.foreach_get("value", vals)
        else:
            idx = np.zeros(n, dtype=np.int32)
            me.attributes["i2l_index"].data.foreach_get("value", idx)
            vals = np.array(
                [existing[(model.bricks[i].part_id, bins[i])] for i in idx], dtype=np.int32
            )
        me.attributes["i2l_proto"].data.foreach_set("value", vals)
        me.update()


__all__ = [
    "METHODS",
    "DEFAULT_METHOD",
    "build_model",
    "remove_model",
    "model_from_collection",
    "find_model_collection",
    "model_collections",
    "step_parents",
    "brick_objects",
    "compute_stats",
    "get_stats",
    "set_stats",
    "set_display",
    "mark_owned",
    "model_to_json",
    "model_from_json",
    "PART_KEY",
]

"""The add-on's operators in real Blender: voxels/image → LEGO, LDraw and parts-list I/O,
clear errors that leave the scene and disk unchanged, poll, stats, stress highlight."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.bpy

import image2lego  # noqa: E402
from image2lego.blender import jobs, preferences  # noqa: E402
from image2lego.blender import materials as mats  # noqa: E402
from image2lego.blender import scene as lego_scene  # noqa: E402
from image2lego.core.pipeline import PipelineOptions, run, voxels_to_lego_steps  # noqa: E402
from image2lego.lego import ldraw, partslist  # noqa: E402
from image2lego.lego.convert import ConvertOptions  # noqa: E402
from image2lego.lego.voxels import FRAGMENT_FRACTION  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def addon():
    image2lego.register()
    yield
    image2lego.unregister()


def _grid() -> np.ndarray:
    """A small L-shaped solid with a tower: a few layers, several part sizes."""
    g = np.zeros((6, 5, 4), dtype=bool)
    g[:, :3, 0] = True
    g[:3, :, 1] = True
    g[1:3, 1:3, 2:] = True
    return g


@pytest.fixture()
def scene(tmp_path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    s = bpy.context.scene.image2lego
    s.color_mode = "single"
    s.single_color = "4"
    s.method = "objects"
    s.model_name = "Test Model"
    return s


@pytest.fixture()
def voxel_file(tmp_path) -> Path:
    p = tmp_path / "grid.npy"
    np.save(p, _grid())
    return p


def _expected(s) -> object:
    opts = PipelineOptions(
        resolution=int(s.resolution),
        convert=ConvertOptions(
            scale=s.scale_mode,
            brick_types=s.brick_types,
            hollow=s.hollow,
            wall_thickness=s.wall_thickness,
            supports=s.supports,
            color_mode=s.color_mode,
            k=s.k_colors,
            color=int(s.single_color),
            seed=s.seed,
        ),
    )
    return run(voxels_to_lego_steps(_grid(), opts)).model


def _snapshot(folder: Path | None = None):
    data = {
        k: sorted(d.name for d in getattr(bpy.data, k))
        for k in ("objects", "meshes", "materials", "collections", "node_groups")
    }
    files = sorted(os.listdir(folder)) if folder is not None and folder.exists() else None
    return data, files


@pytest.mark.parametrize("method", ["objects", "geonodes"])
def test_voxels_operator_builds_lego_brick_list(scene, voxel_file, method):
    scene.method = method
    assert bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file)) == {"FINISHED"}
    want = _expected(scene)
    coll = lego_scene.find_model_collection(bpy.context)
    assert coll.name == "Test Model"
    got = lego_scene.model_from_collection(coll)
    assert got.bricks == want.bricks and len(got) > 5
    if method == "objects":
        obs = lego_scene.brick_objects(coll)
        assert sorted((o["i2l_part"], o["i2l_color"]) for o in obs) == sorted(
            (b.part_id, b.color) for b in want.bricks
        )
    else:
        n = sum(len(p.data.vertices) for p in lego_scene.step_parents(coll))
        assert n == len(want.bricks)
    colours = {m[mats.COLOR_KEY] for m in bpy.data.materials if mats.COLOR_KEY in m}
    assert colours == {b.color for b in want.bricks} == {4}
    # The settings it was made with travel with the model.
    assert coll.image2lego.single_color == "4" and coll.image2lego.method == method
    st = lego_scene.get_stats(coll)
    assert st["bricks"] == len(want.bricks)
    assert st["parts"] == len({b.part_id for b in want.bricks})
    assert st["colors"] == 1
    assert st["layers"] == len({b.z for b in want.bricks})
    assert st["connected"] is True


def test_rebuild_replaces_cleanly(scene, voxel_file):
    bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file))
    first = _snapshot()[0]
    scene.single_color = "1"
    bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file))
    scene.single_color = "4"
    bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file))
    assert _snapshot()[0] == first
    orphans = [
        d.name
        for k in ("objects", "meshes", "materials", "collections")
        for d in getattr(bpy.data, k)
        if d.users == 0
    ]
    assert orphans == []
    assert len(lego_scene.model_collections(bpy.context)) == 1


@pytest.mark.parametrize("ext", [".ldr", ".mpd"])
def test_export_ldraw_is_byte_identical(scene, voxel_file, tmp_path, ext):
    bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file))
    out = tmp_path / f"model{ext}"
    assert bpy.ops.image2lego.export_ldraw(filepath=str(out)) == {"FINISHED"}
    model = _expected(scene)
    to = ldraw.to_ldr if ext == ".ldr" else ldraw.to_mpd
    assert out.read_bytes() == to(model, title="Test Model", name=out.name).encode("utf-8")


def test_import_ldraw_round_trip(scene, voxel_file, tmp_path):
    scene.single_color = "14"
    bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file))
    out = tmp_path / "back.ldr"
    bpy.ops.image2lego.export_ldraw(filepath=str(out))
    assert bpy.ops.image2lego.import_ldraw(filepath=str(out)) == {"FINISHED"}
    coll = lego_scene.find_model_collection(bpy.context, "back")
    back = lego_scene.model_from_collection(coll)
    want = _expected(scene)
    assert sorted(back.bricks) == sorted(want.bricks)
    assert len(lego_scene.model_collections(bpy.context)) == 2


@pytest.mark.parametrize(
    "fmt,ext,writer",
    [
        ("csv", ".csv", partslist.parts_csv),
        ("bricklink", ".xml", partslist.bricklink_xml),
        ("rebrickable", ".csv", partslist.rebrickable_csv),
    ],
)
def test_export_parts_list(scene, voxel_file, tmp_path, fmt, ext, writer):
    bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file))
    out = tmp_path / "parts.csv"
    assert bpy.ops.image2lego.export_parts(filepath=str(out), format=fmt) == {"FINISHED"}
    written = out.with_suffix(ext)
    assert written.read_bytes() == writer(_expected(scene)).encode("utf-8")


def test_output_folder_gets_ldraw_and_parts(scene, voxel_file, tmp_path):
    scene.output_dir = str(tmp_path / "out")
    bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file))
    model = _expected(scene)
    assert (tmp_path / "out" / "Test_Model.ldr").read_bytes() == ldraw.to_ldr(
        model, title="Test Model", name="Test_Model.ldr"
    ).encode()
    assert (tmp_path / "out" / "Test_Model_parts.csv").read_bytes() == partslist.parts_csv(
        model
    ).encode()


def test_missing_image_reports_and_changes_nothing(scene, tmp_path):
    scene.image_path = str(tmp_path / "nope.png")
    scene.output_dir = str(tmp_path)
    before = _snapshot(tmp_path)
    with pytest.raises(RuntimeError, match="not found"):
        bpy.ops.image2lego.image_to_lego()
    assert _snapshot(tmp_path) == before


def test_corrupt_image_reports_and_changes_nothing(scene, tmp_path):
    pytest.importorskip("image2lego.core.preprocess")
    bad = tmp_path / "photo.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    scene.image_path = str(bad)
    scene.output_dir = str(tmp_path / "out")
    before = _snapshot(tmp_path)
    with pytest.raises(RuntimeError, match=r"(?i)image|photo\.png"):
        bpy.ops.image2lego.image_to_lego()
    assert _snapshot(tmp_path) == before
    assert not (tmp_path / "out").exists()


def test_unwritable_output_folder_reports_and_changes_nothing(scene, voxel_file, tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the output folder should be")
    scene.output_dir = str(blocker / "out")
    before = _snapshot(tmp_path)
    with pytest.raises(RuntimeError, match="not a folder"):
        bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file))
    assert _snapshot(tmp_path) == before
    out = tmp_path / "x.ldr"
    with pytest.raises(RuntimeError):  # no model in the scene: poll fails
        bpy.ops.image2lego.export_ldraw(filepath=str(out))
    assert not out.exists()


def test_bad_voxel_file_reports(scene, tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((3, 3, 3), 2, dtype=np.int64))
    before = _snapshot(tmp_path)
    with pytest.raises(RuntimeError, match="only 0 and 1"):
        bpy.ops.image2lego.voxels_to_lego(filepath=str(bad))
    assert _snapshot(tmp_path) == before


def test_poll(scene):
    scene.image_path = ""
    assert not bpy.ops.image2lego.image_to_lego.poll()
    assert not bpy.ops.image2lego.export_ldraw.poll()
    assert not bpy.ops.image2lego.highlight_stress.poll()
    scene.image_path = "//photo.png"
    assert bpy.ops.image2lego.image_to_lego.poll()


def test_highlight_stress_toggles(scene, voxel_file):
    bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file))
    coll = lego_scene.find_model_collection(bpy.context)
    # the build's repair report reached the Stats panel
    st = lego_scene.get_stats(coll)
    assert st["stable"] is True and st["connected"] is True and st["props_added"] == 0
    obs = lego_scene.brick_objects(coll)
    assert bpy.ops.image2lego.highlight_stress() == {"FINISHED"}
    assert all(o.material_slots[0].material.get(mats.STRESS_KEY) is not None for o in obs)
    assert scene.display_mode == "stress"
    st = lego_scene.get_stats(coll)
    assert st["stable"] is True and st["max_stress"] <= 1 and st["unsupported_bricks"] == 0
    bpy.ops.image2lego.highlight_stress()
    assert [o.material_slots[0].material[mats.COLOR_KEY] for o in obs] == [4] * len(obs)
    assert scene.display_mode == "colors"


def test_no_pip_install_and_no_torch_needed(scene):
    """Dependencies come bundled: there is no install operator, and torch is not one of them."""
    assert "install_torch" not in dir(bpy.ops.image2lego)
    assert "torch" not in preferences.DEPENDENCIES
    assert jobs.dependencies_missing_message() is None  # the test venv has them all


def test_preferences_id_is_the_root_package():
    assert preferences.ADDON_ID == "image2lego"
    assert preferences.Image2LegoPreferences.bl_idname == "image2lego"


def _example_image() -> Path | None:
    for p in sorted((REPO / "examples").glob("*")) if (REPO / "examples").is_dir() else []:
        if p.suffix.lower() in (".png", ".jpg", ".jpeg"):
            return p
    return None


@pytest.mark.slow
def test_image_operator_on_example(scene, tmp_path):
    if not preferences.has_weights():
        pytest.skip("no trained weights in weights/ yet")
    img = _example_image()
    if img is None:
        pytest.skip("no example image in examples/")
    pytest.importorskip("torch")
    from image2lego.core.pipeline import image_to_lego_steps

    scene.image_path = str(img)
    scene.resolution = "16"
    assert bpy.ops.image2lego.image_to_lego() == {"FINISHED"}
    coll = lego_scene.find_model_collection(bpy.context)
    got = lego_scene.model_from_collection(coll)
    from image2lego.blender import properties

    result = run(image_to_lego_steps(str(img), properties.pipeline_options(scene)))
    want = result.model
    # how many floating cells the pipeline dropped reaches the Stats panel
    stats = lego_scene.get_stats(coll)
    assert stats["fragments_dropped_cells"] == result.fragments_dropped_cells
    assert got.bricks == want.bricks


def test_repair_settings_reach_the_pipeline(scene):
    from image2lego.blender import properties

    assert scene.repair and scene.reinforce  # on by default, as in the CLI
    opts = properties.pipeline_options(scene)
    assert opts.repair is True and opts.reinforce is True
    scene.reinforce = False
    assert properties.pipeline_options(scene).reinforce is False
    scene.repair = False
    assert properties.pipeline_options(scene).repair is False
    assert (
        scene.drop_fragments
        and properties.pipeline_options(scene).drop_fragments == FRAGMENT_FRACTION
    )
    scene.drop_fragments = False
    assert properties.pipeline_options(scene).drop_fragments == 0.0


def test_real_elements_setting_reaches_the_converter(scene):
    from image2lego.blender import properties

    assert scene.real_elements  # on by default, as in the CLI
    assert properties.convert_options(scene).real_elements is True
    scene.real_elements = False
    assert properties.pipeline_options(scene).convert.real_elements is False


def test_models_are_scoped_to_their_scene(scene, voxel_file):
    """Building "LEGO Model" in Scene 2 leaves Scene 1's "LEGO Model" alone."""
    assert bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file)) == {"FINISHED"}
    first = lego_scene.find_model_collection(bpy.context)
    n_first = len(first.all_objects)
    s2 = bpy.data.scenes.new("Scene 2")
    with bpy.context.temp_override(scene=s2):
        s2.image2lego.model_name = first[lego_scene.MARK_KEY]
        assert bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file)) == {"FINISHED"}
        second = lego_scene.find_model_collection(bpy.context)
    assert second != first and first.name in bpy.data.collections
    assert len(first.all_objects) == n_first


def test_import_ldraw_twice_keeps_both(scene, voxel_file, tmp_path):
    bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file))
    built = lego_scene.find_model_collection(bpy.context)[lego_scene.MARK_KEY]
    out = tmp_path / "twice.ldr"
    bpy.ops.image2lego.export_ldraw(filepath=str(out))
    bpy.ops.image2lego.import_ldraw(filepath=str(out))
    bpy.ops.image2lego.import_ldraw(filepath=str(out))
    names = sorted(c[lego_scene.MARK_KEY] for c in lego_scene.model_collections(bpy.context))
    assert names == sorted([built, "twice", "twice.001"])


def test_build_sets_up_world_lights_and_millimetres(scene, voxel_file):
    sc = bpy.context.scene
    assert sc.world is None and not [o for o in sc.objects if o.type == "LIGHT"]
    bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file))
    assert sc.world is not None
    assert len([o for o in sc.objects if o.type == "LIGHT"]) == 2
    assert sc.unit_settings.length_unit == "MILLIMETERS"
    sc.unit_settings.length_unit = "CENTIMETERS"  # the user's choice is kept on a rebuild
    bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file))
    assert sc.unit_settings.length_unit == "CENTIMETERS"
    assert len([o for o in sc.objects if o.type == "LIGHT"]) == 2


def test_warnings_are_reported(scene):
    from image2lego.blender import jobs

    stats = {"connected": False, "stable": False, "max_stress": 3.5, "unsupported_bricks": 2}
    w = jobs.model_warnings(stats)
    assert len(w) == 3 and "not connected" in w[0] and "3.50" in w[1]
    assert jobs.model_warnings({"connected": True, "stable": True, "unsupported_bricks": 0}) == []


def _datablocks():
    return {
        k: len(getattr(bpy.data, k))
        for k in ("objects", "meshes", "collections", "node_groups", "materials", "actions")
    } | {"cameras": len(bpy.data.cameras)}


@pytest.mark.parametrize("method", ["objects", "geonodes"])
def test_remove_model_leaves_no_orphans(scene, voxel_file, method):
    scene.method = method
    before = _datablocks()
    bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file))
    lights = [o for o in bpy.context.scene.objects if o.type == "LIGHT"]  # scene setup stays
    assert _datablocks() != before
    assert bpy.ops.image2lego.remove_model("EXEC_DEFAULT") == {"FINISHED"}
    after = _datablocks()
    after["objects"] -= len(lights)
    assert after == before, (before, after)
    assert lego_scene.find_model_collection(bpy.context) is None


@pytest.mark.parametrize("method", ["objects", "geonodes"])
def test_remove_animated_model_leaves_no_actions_and_restores_the_scene(scene, voxel_file, method):
    """Remove Model (and a rebuild, which removes the old model) of an animated model: no
    keyed action or camera left, the scene's frame range and camera as before Animate Build."""
    scene.method = method
    sc = bpy.context.scene
    before = _datablocks()
    frames = sc.frame_start, sc.frame_end
    bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file))
    lights = [o for o in sc.objects if o.type == "LIGHT"]
    assert bpy.ops.image2lego.animate_build() == {"FINISHED"}
    assert len(bpy.data.actions) > 0 and sc.frame_end != frames[1] and sc.camera is not None
    assert bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file)) == {"FINISHED"}
    assert len(bpy.data.actions) == 0 and (sc.frame_start, sc.frame_end) == frames
    assert bpy.ops.image2lego.animate_build() == {"FINISHED"}
    assert bpy.ops.image2lego.remove_model("EXEC_DEFAULT") == {"FINISHED"}
    after = _datablocks()
    after["objects"] -= len(lights)
    assert after == before, (before, after)
    assert (sc.frame_start, sc.frame_end) == frames and sc.camera is None


def test_menus_and_file_handlers_are_registered(scene):
    import image2lego.operators.model as model_ops

    for menu, fn in model_ops._MENUS:
        assert fn in getattr(bpy.types, menu)._dyn_ui_initialize(), menu
    fhs = {c.bl_idname for c in bpy.types.FileHandler.__subclasses__() if c.is_registered}
    assert {"IMAGE2LEGO_FH_ldraw", "IMAGE2LEGO_FH_image"} <= fhs
    for op in ("remove_model", "update_model", "open_image", "brickify_selected"):
        assert op in dir(bpy.ops.image2lego)


def test_update_model_rebuilds_a_voxel_model_from_its_file(scene, voxel_file):
    """Update Model works for every kind of model, not only image ones: a voxel model is
    rebuilt from its file with the settings shown for it, replacing itself."""
    assert bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file)) == {"FINISHED"}
    coll = bpy.data.collections["Test Model"]
    assert lego_scene.get_source(coll) == {"kind": "voxels", "path": str(voxel_file)}
    before = lego_scene.model_from_collection(coll)
    assert {b.color for b in before.bricks} == {4}
    coll.image2lego.single_color = "1"  # the model's own settings, as its panel shows them
    bpy.context.view_layer.active_layer_collection = (
        bpy.context.view_layer.layer_collection.children[coll.name]
    )
    assert bpy.ops.image2lego.update_model.poll()
    assert bpy.ops.image2lego.update_model() == {"FINISHED"}
    models = [c for c in bpy.data.collections if lego_scene.is_model_collection(c)]
    assert [c.name for c in models] == ["Test Model"]  # replaced, not added
    after = lego_scene.model_from_collection(models[0])
    assert {b.color for b in after.bricks} == {1} and len(after) == len(before)
    voxel_file.unlink()
    assert not bpy.ops.image2lego.update_model.poll()  # its file is gone


def test_every_setting_and_operator_has_a_tooltip(scene):
    """What Blender shows on hover: every operator, every setting and every menu item says
    what it does (a short label alone is not a tooltip)."""
    settings = bpy.types.Scene.bl_rna.properties["image2lego"].fixed_type
    for p in settings.properties:
        if p.identifier == "rna_type":
            continue
        assert len(p.description) >= 12, p.identifier
        if p.type == "ENUM":
            for item in p.enum_items:
                assert len(item.description) >= 8, (p.identifier, item.identifier)
    ops = [n for n in dir(bpy.types) if n.startswith("IMAGE2LEGO_OT_")]
    assert len(ops) >= 10
    for n in ops:
        op = getattr(bpy.ops.image2lego, n.removeprefix("IMAGE2LEGO_OT_"))
        assert len(op.get_rna_type().description) >= 15, n


def test_resolution_menu_offers_64_only_with_weights_that_have_it(scene, tmp_path, monkeypatch):
    """Blender's Resolution menu lists 64³ while the weights in use have a 64³ level; a 64³
    choice kept after switching to weights without one is one clear error, not a crash."""
    pytest.importorskip("torch")
    from image2lego.blender import properties
    from image2lego.core.model import OctreeAutoencoder
    from image2lego.core.weights import save_weights
    from image2lego.training.level64 import grown_autoencoder

    from .tiny_model import TINY

    base = OctreeAutoencoder(TINY).eval()
    save_weights(tmp_path / "w32", base, None, {r: 0.0 for r in (4, 8, 16, 32)})
    grown = grown_autoencoder(base, channels=4).eval()
    save_weights(tmp_path / "w64", grown, None, {r: 0.0 for r in (4, 8, 16, 32, 64)})
    folder = {"dir": tmp_path / "w64"}
    monkeypatch.setattr(preferences, "weights_dir", lambda context=None: folder["dir"])

    def offered():
        return [item[0] for item in properties.resolution_items(scene, bpy.context)]

    assert offered() == ["4", "8", "16", "32", "64"]
    scene.resolution = "64"
    assert properties.pipeline_options(scene).resolution == 64
    folder["dir"] = tmp_path / "w32"
    assert offered() == ["4", "8", "16", "32"]
    with pytest.raises(ValueError, match="no 64³ level; choose 32³"):
        properties.pipeline_options(scene)
    other = bpy.data.collections.new("other").image2lego
    properties.copy_settings(scene, other)  # the stale choice is skipped, not a TypeError
    scene.resolution = "32"
    assert properties.pipeline_options(scene).resolution == 32


# --------------------------------------------------------------------------- size limits (#22)


def _one_line(exc: BaseException) -> str:
    msg = str(exc).strip()
    assert "\n" not in msg, msg
    return msg


def test_scene_over_the_cli_size_limit_is_refused_and_changes_nothing(
    scene, voxel_file, tmp_path, monkeypatch
):
    """The add-on applies the CLI's Blender-scene limit (outputs.MAX_SCENE_BRICKS) before it
    writes a file or touches the scene: a rebuild over it keeps the model already there."""
    from image2lego import outputs

    n = len(_expected(scene))
    scene.output_dir = str(tmp_path / "out")
    assert bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file)) == {"FINISHED"}
    files = sorted(os.listdir(tmp_path / "out"))
    before = _snapshot(tmp_path / "out")
    monkeypatch.setattr(outputs, "MAX_SCENE_BRICKS", n - 1)
    (tmp_path / "out" / "Test_Model.ldr").write_text("the earlier file")
    with pytest.raises(RuntimeError, match=f"scene of {n} bricks is over the limit of {n - 1}"):
        bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file))
    assert _snapshot(tmp_path / "out") == before and sorted(os.listdir(tmp_path / "out")) == files
    assert (tmp_path / "out" / "Test_Model.ldr").read_text() == "the earlier file"
    assert len(lego_scene.model_from_collection(lego_scene.find_model_collection(bpy.context))) == n
    # exactly at the limit builds
    monkeypatch.setattr(outputs, "MAX_SCENE_BRICKS", n)
    assert bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file)) == {"FINISHED"}


def test_scene_limit_message_is_one_line_without_cli_flags(scene, monkeypatch):
    from image2lego import outputs

    monkeypatch.setattr(outputs, "MAX_SCENE_BRICKS", 2)
    model = _expected(scene)
    with pytest.raises(outputs.OutputLimitError) as info:
        jobs.check_scene_limits(model)
    msg = _one_line(info.value)
    assert msg.startswith(f"a Blender scene of {len(model)} bricks is over the limit of 2; ")
    assert "smaller model" in msg and "for the render" not in msg
    jobs.check_scene_limits(model.__class__(model.bricks[:2], model.shape))  # at the limit


def test_worker_refuses_an_oversized_scene_before_writing_files(scene, tmp_path, monkeypatch):
    """Image → LEGO's worker thread (jobs.prepare_steps) checks the limit before it writes the
    output files, so the modal operator reports it and nothing was written."""
    from image2lego import outputs
    from image2lego.lego.progress import run as run_steps

    monkeypatch.setattr(outputs, "MAX_SCENE_BRICKS", 1)
    opts = jobs.pipeline_options(bpy.context)
    out = tmp_path / "out"
    with pytest.raises(outputs.OutputLimitError, match="over the limit of 1"):
        run_steps(jobs.prepare_steps(voxels_to_lego_steps(_grid(), opts), out, "Big"))
    assert not out.exists()


def test_import_ldraw_over_the_size_limit_is_refused(scene, voxel_file, tmp_path, monkeypatch):
    from image2lego import outputs

    bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file))
    ldr = tmp_path / "big.ldr"
    bpy.ops.image2lego.export_ldraw(filepath=str(ldr))
    before = _snapshot()
    monkeypatch.setattr(outputs, "MAX_SCENE_BRICKS", 3)
    with pytest.raises(RuntimeError, match="over the limit of 3") as info:
        bpy.ops.image2lego.import_ldraw(filepath=str(ldr))
    _one_line(info.value)
    assert _snapshot() == before


def test_render_instructions_over_the_step_limit_is_refused_before_any_render(
    scene, voxel_file, tmp_path, monkeypatch
):
    from image2lego import outputs

    bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file))
    model = lego_scene.model_from_collection(lego_scene.find_model_collection(bpy.context))
    steps = model.n_steps()
    assert steps > 1
    out = tmp_path / "booklet"
    before = _snapshot()
    monkeypatch.setattr(outputs, "MAX_INSTRUCTION_STEPS", steps - 1)
    with pytest.raises(RuntimeError, match=f"{steps} steps, over the limit of {steps - 1}") as e:
        bpy.ops.image2lego.render_instructions(directory=str(out))
    assert "--no-instructions" not in _one_line(e.value)
    monkeypatch.setattr(outputs, "MAX_INSTRUCTION_STEPS", 10**6)
    monkeypatch.setattr(outputs, "MAX_SCENE_BRICKS", len(model) - 1)
    with pytest.raises(RuntimeError, match="over the limit"):
        bpy.ops.image2lego.render_instructions(directory=str(out))
    assert _snapshot() == before and not out.exists()


def test_grayed_out_buttons_say_why(scene, voxel_file, tmp_path):
    """A button whose poll fails shows why in its tooltip (poll_message_set); scripts get the
    same sentence in the RuntimeError."""
    scene.image_path = ""
    needs_model = (
        "export_ldraw", "export_parts", "render_instructions", "animate_build",
        "clear_animation", "remove_model", "update_model", "highlight_stress", "select_added",
    )  # fmt: skip
    for name in needs_model:
        with pytest.raises(RuntimeError, match="No LEGO model in this scene: build one first"):
            getattr(bpy.ops.image2lego, name)()
    for name in ("image_to_lego", "preview_input", "mosaic"):
        with pytest.raises(RuntimeError, match="Choose an input image first"):
            getattr(bpy.ops.image2lego, name)()
    with pytest.raises(RuntimeError, match="Select one or more mesh objects first"):
        bpy.ops.image2lego.brickify_selected()
    # an imported LDraw model has nothing Update Model could rebuild it from
    bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file))
    ldr = tmp_path / "imported.ldr"
    bpy.ops.image2lego.export_ldraw(filepath=str(ldr))
    bpy.ops.image2lego.remove_model("EXEC_DEFAULT")
    bpy.ops.image2lego.import_ldraw(filepath=str(ldr))
    with pytest.raises(RuntimeError, match="Nothing to rebuild this model from"):
        bpy.ops.image2lego.update_model()


def test_long_image_runs_go_to_a_child_process(scene, tmp_path, monkeypatch):
    """Image → LEGO from the UI at 64³ (about a minute, most of it one repair step) runs in a
    child process that ESC kills; 32³ (about a second) stays on the worker thread; scripts
    (execute) run in-process."""
    from image2lego.blender import subproc

    monkeypatch.delenv(subproc.ENV, raising=False)
    scene.image_path = str(REPO / "examples" / "chair.png")
    from image2lego.blender import properties

    if "64" not in [item[0] for item in properties.resolution_items(scene, bpy.context)]:
        pytest.skip("the weights in use have no 64³ level")
    scene.resolution = "64"
    steps, _ = jobs.image_steps(bpy.context, child=True)
    assert isinstance(steps, subproc.ChildRun)
    assert steps.target == "core.pipeline:image_to_lego_steps"
    steps.close()
    steps, _ = jobs.image_steps(bpy.context)  # execute() from a script: in-process
    assert not isinstance(steps, subproc.ChildRun)
    scene.resolution = "32"
    steps, _ = jobs.image_steps(bpy.context, child=True)
    assert not isinstance(steps, subproc.ChildRun)
    # Voxels → LEGO: by the grid's longest axis
    for n, in_child in ((subproc.CHILD_FROM_RESOLUTION, True), (32, False)):
        grid = np.zeros((n, 4, 4), dtype=bool)
        grid[:, :2, 0] = True
        np.save(tmp_path / f"g{n}.npy", grid)
        steps, _ = jobs.voxel_steps(bpy.context, tmp_path / f"g{n}.npy", child=True)
        assert isinstance(steps, subproc.ChildRun) is in_child, n
        steps.close()


def test_voxels_operator_from_the_ui_builds_through_a_child(scene, voxel_file, monkeypatch):
    """The modal Voxels → LEGO with its steps in a child process (forced for the small test
    grid) builds the same model as a script's in-process run."""
    from image2lego.blender import subproc
    from image2lego.blender.background import StepJob

    bpy.ops.image2lego.voxels_to_lego(filepath=str(voxel_file))
    want = lego_scene.model_from_collection(lego_scene.find_model_collection(bpy.context))
    monkeypatch.setenv(subproc.ENV, "always")
    steps, out_dir = jobs.voxel_steps(bpy.context, voxel_file, child=True)
    assert isinstance(steps, subproc.ChildRun)
    job = StepJob(jobs.prepare_steps(steps, out_dir, "Test Model"), on_cancel=steps.kill).start()
    assert job.wait(60) and job.poll()[0] == "done" and steps.in_child is True
    coll = jobs.finish(bpy.context, job.poll()[1], name="Test Model")
    assert lego_scene.model_from_collection(coll).bricks == want.bricks

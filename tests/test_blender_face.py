"""Face → LEGO and Mosaic in real Blender: the operators build the same models as the
library, write their files, and fail with a clear report that changes nothing."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.bpy

import image2lego  # noqa: E402
from image2lego.blender import scene as lego_scene  # noqa: E402
from image2lego.core import face as F  # noqa: E402
from image2lego.lego import ldraw, mosaic  # noqa: E402

needs_mediapipe = pytest.mark.skipif(
    not F.mediapipe_available(), reason="the optional mediapipe extra is not installed"
)


@pytest.fixture(scope="module", autouse=True)
def addon():
    image2lego.register()
    yield
    image2lego.unregister()


@pytest.fixture()
def scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    s = bpy.context.scene.image2lego
    s.method = "objects"
    s.model_name = "Portrait"
    return s


def _photo(tmp_path, which="astronaut"):
    from PIL import Image
    from skimage import data

    p = tmp_path / f"{which}.png"
    Image.fromarray(getattr(data, which)()).save(p)
    return p


def _bricks(coll) -> list:
    return sorted(
        (b.x, b.y, b.z, b.part_id, b.rotated, b.color)
        for b in lego_scene.model_from_collection(coll).bricks
    )


@needs_mediapipe
def test_face_to_lego_builds_the_library_bust(scene, tmp_path):
    from image2lego.blender import jobs
    from image2lego.core.pipeline import run
    from image2lego.operators.face import FACE_REPAIR_MAX_BRICKS

    photo = _photo(tmp_path)
    scene.image_path = str(photo)
    scene.output_dir = str(tmp_path / "out")
    assert bpy.ops.image2lego.face_to_lego(size=10, colors=3) == {"FINISHED"}
    coll = lego_scene.find_model_collection(bpy.context)
    assert coll is not None and coll.name.startswith("Portrait")
    pipe = jobs.pipeline_options(bpy.context)
    pipe.repair_max_bricks = max(pipe.repair_max_bricks, FACE_REPAIR_MAX_BRICKS)
    want = run(F.face_to_lego_steps(photo, F.FaceOptions(size=10, k=3, pipeline=pipe))).model
    assert _bricks(coll) == sorted(
        (b.x, b.y, b.z, b.part_id, b.rotated, b.color) for b in want.bricks
    )
    assert len({b.color for b in want.bricks}) <= 3
    assert ldraw.parse_ldr(tmp_path / "out" / "Portrait.ldr").bricks
    assert lego_scene.get_source(coll)["kind"] == "face"


@needs_mediapipe
def test_face_to_lego_without_a_face_reports_and_builds_nothing(scene, tmp_path):
    scene.image_path = str(_photo(tmp_path, "coffee"))
    scene.output_dir = str(tmp_path / "out")
    with pytest.raises(RuntimeError, match="no face found"):
        bpy.ops.image2lego.face_to_lego(size=10)
    assert lego_scene.find_model_collection(bpy.context) is None
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_mosaic_builds_the_library_mosaic_and_writes_it(scene, tmp_path):
    from image2lego.core.face import load_rgb

    photo = _photo(tmp_path)
    scene.image_path = str(photo)
    scene.output_dir = str(tmp_path / "out")
    r = bpy.ops.image2lego.mosaic(width=16, height=24, colors=5, element="round_tile")
    assert r == {"FINISHED"}
    coll = lego_scene.find_model_collection(bpy.context)
    opt = mosaic.MosaicOptions(width=16, height=24, k=5, element="round_tile")
    want = mosaic.make_mosaic(load_rgb(photo), opt).model
    assert _bricks(coll) == sorted(
        (b.x, b.y, b.z, b.part_id, b.rotated, b.color) for b in want.bricks
    )
    assert sum(b.part_id == "98138" for b in want.bricks) == 16 * 24
    written = ldraw.parse_ldr(tmp_path / "out" / "LEGO_Mosaic.ldr")
    assert len(written.bricks) == len(want.bricks)


def test_standing_mosaic_builds_the_library_wall(scene, tmp_path):
    from image2lego.core.face import load_rgb

    photo = _photo(tmp_path)
    scene.image_path = str(photo)
    assert bpy.ops.image2lego.mosaic(width=16, height=16, colors=4, standing=True) == {"FINISHED"}
    coll = lego_scene.find_model_collection(bpy.context)
    opt = mosaic.MosaicOptions(width=16, height=16, k=4, orientation="standing")
    want = mosaic.make_mosaic(load_rgb(photo), opt).model
    assert _bricks(coll) == sorted(
        (b.x, b.y, b.z, b.part_id, b.rotated, b.color) for b in want.bricks
    )


def test_mosaic_without_an_image_cannot_run_and_a_bad_image_reports(scene, tmp_path):
    scene.image_path = ""
    assert not bpy.ops.image2lego.mosaic.poll()
    bad = tmp_path / "photo.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    scene.image_path = str(bad)
    with pytest.raises(RuntimeError, match=r"(?i)image|photo\.png"):
        bpy.ops.image2lego.mosaic(width=16, height=16)
    assert lego_scene.find_model_collection(bpy.context) is None


def test_face_to_lego_is_greyed_out_with_the_reason_where_mediapipe_cannot_load(
    scene, tmp_path, monkeypatch
):
    """Where no mediapipe can load (e.g. Blender 5.1+ on an Intel Mac: no wheel of either
    release), the button is greyed out, its tooltip and the panel say why in one line, and
    running it anyway reports that line."""
    from image2lego.operators.face import IMAGE2LEGO_OT_face_to_lego as Op

    scene.image_path = str(_photo(tmp_path))
    reason = F.mediapipe_unavailable_reason(python=(3, 13)) or (
        "Face → LEGO cannot load mediapipe: no wheel for Python 3.13 here"
    )
    monkeypatch.setattr(F, "mediapipe_unavailable_reason", lambda python=None: reason)
    assert not bpy.ops.image2lego.face_to_lego.poll()
    tip = Op.description(bpy.context, None)
    assert tip.endswith(reason) and "Turn the face" in tip
    from image2lego.blender import jobs
    from image2lego.operators.face import face_steps

    with pytest.raises(jobs.JobError, match="no wheel for Python 3.13"):  # what it reports
        face_steps(bpy.context, 16, 4)
    monkeypatch.undo()
    assert bpy.ops.image2lego.face_to_lego.poll() == F.mediapipe_available()


def test_the_face_and_mosaic_panel_is_registered():
    assert hasattr(bpy.types, "IMAGE2LEGO_PT_face_mosaic")
    for op in ("face_to_lego", "mosaic"):
        assert len(getattr(bpy.ops.image2lego, op).get_rna_type().description) >= 15


def test_caption_to_lego_builds_the_library_model_and_update_rebuilds_it(scene, tmp_path):
    from image2lego.blender import jobs
    from image2lego.core import caption as C
    from image2lego.core.pipeline import run

    scene.model_name = "Sofa"
    scene.output_dir = str(tmp_path / "out")
    assert bpy.ops.image2lego.caption_to_lego(text="a small red sofa", variant=1) == {"FINISHED"}
    coll = lego_scene.find_model_collection(bpy.context)
    want = run(C.caption_to_lego_steps("a small red sofa", jobs.pipeline_options(bpy.context), 1))
    wanted = sorted((b.x, b.y, b.z, b.part_id, b.rotated, b.color) for b in want.model.bricks)
    assert _bricks(coll) == wanted
    assert {b.color for b in want.model.bricks} == {4}
    assert lego_scene.get_source(coll) == {"kind": "caption", "text": "a small red sofa",
                                            "variant": 1}  # fmt: skip
    assert ldraw.parse_ldr(tmp_path / "out" / "Sofa.ldr").bricks
    assert bpy.ops.image2lego.update_model() == {"FINISHED"}
    models = lego_scene.model_collections(bpy.context)
    assert len(models) == 1 and _bricks(models[0]) == wanted  # replaced by the same model


def test_a_caption_without_a_known_object_reports_and_builds_nothing(scene):
    from image2lego.core import caption as C

    C._class_space.cache_clear()  # not checked up front (the model is not loaded): the job's
    # own reading refuses it, and the scene stays as it was
    # near no class for the embedding and no known word for the word table
    with pytest.raises(RuntimeError, match="I can build"):
        bpy.ops.image2lego.caption_to_lego(text="xyzzy plugh")
    assert lego_scene.find_model_collection(bpy.context) is None


def test_the_caption_panel_says_how_captions_are_read(monkeypatch):
    from image2lego.core import caption as C
    from image2lego.core import textembed
    from image2lego.panels import face as panel

    if textembed.embedding_available():
        assert "all-MiniLM-L6-v2" in panel.caption_reader_line()
    monkeypatch.setattr(C, "reader_unavailable_reason", lambda: "tokenizers is not installed")
    assert (
        panel.caption_reader_line()
        == "Captions read by the word table: tokenizers is not installed"
    )


def test_update_model_rebuilds_a_mosaic_from_its_photo_and_stored_settings(scene, tmp_path):
    """Not the operator's defaults (48×48 tiles) nor the image now in the panel: the mosaic's
    own photo, size, colours, element and orientation; the same name, replaced in place."""
    photo = _photo(tmp_path)
    scene.image_path = str(photo)
    scene.model_name = "Portrait"
    r = bpy.ops.image2lego.mosaic(width=24, height=16, colors=5, element="round_plate")
    assert r == {"FINISHED"}
    coll = lego_scene.find_model_collection(bpy.context)
    name, before = coll.name, _bricks(coll)
    src = lego_scene.get_source(coll)
    stored = (src["width"], src["height"], src["colors"], src["element"])
    assert stored == (24, 16, 5, "round_plate")
    scene.image_path = str(_photo(tmp_path, "coffee"))  # another photo in the panel now
    assert bpy.ops.image2lego.update_model() == {"FINISHED"}
    models = lego_scene.model_collections(bpy.context)
    assert len(models) == 1 and models[0].name == name
    assert _bricks(models[0]) == before
    assert sum(b[3] == "6141" for b in before) == 24 * 16


@needs_mediapipe
def test_update_model_rebuilds_a_face_bust_from_its_photo_and_stored_settings(scene, tmp_path):
    photo = _photo(tmp_path)
    scene.image_path = str(photo)
    assert bpy.ops.image2lego.face_to_lego(size=10, colors=3) == {"FINISHED"}
    coll = lego_scene.find_model_collection(bpy.context)
    name, before = coll.name, _bricks(coll)
    assert lego_scene.get_source(coll) == {"kind": "face", "path": str(photo), "size": 10,
                                            "colors": 3}  # fmt: skip
    scene.image_path = str(_photo(tmp_path, "coffee"))  # no face in this one
    assert bpy.ops.image2lego.update_model() == {"FINISHED"}
    models = lego_scene.model_collections(bpy.context)
    assert len(models) == 1 and models[0].name == name
    assert _bricks(models[0]) == before and len({b[5] for b in before}) <= 3
    photo.unlink()  # its photo gone: Update Model cannot run, and says nothing is rebuilt
    assert not bpy.ops.image2lego.update_model.poll()

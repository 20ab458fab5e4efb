"""Caption → LEGO (core/caption.py, caption_cli.py, training/class_latents.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from image2lego import cli
from image2lego.core import caption as C
from image2lego.core.weightsmeta import default_weights_dir


def test_a_caption_gives_class_colour_size_and_variant():
    c = C.parse_caption("A small dark red race cars!", seed=2)
    assert (c.label, c.color, c.resolution, c.variant) == ("car", 320, 16, 2)
    c = C.parse_caption("a light bluish gray couch")
    assert (c.label, c.color, c.resolution) == ("sofa", 71, 32)
    assert C.parse_caption("a grey boat").color == 71  # a plain colour word, not a name
    assert C.parse_caption("an aeroplane").color is None  # the converter's default colour
    # the longer phrase wins: a bedside table is a night stand, not a table
    bedside = C.parse_caption("a bedside table")
    assert bedside.label == "night_stand" and bedside.notes == ()
    two = C.parse_caption("a table and two chairs")
    assert two.label == "table" and two.notes  # the first object, and it says so


@pytest.mark.parametrize("bad", ["", "   ", "a flying saucer", "x" * 600])
def test_a_caption_without_a_known_object_is_one_clear_error(bad):
    with pytest.raises(C.CaptionError) as e:
        C.parse_caption(bad)
    assert "\n" not in str(e.value)


def test_the_shipped_class_latents_fit_the_shipped_weights_and_every_class_decodes():
    lat = C.load_class_latents()  # refuses latents made for other weights
    assert set(lat) == set(C.CLASS_WORDS)
    for label in C.CLASS_WORDS:
        grid, info = C.caption_voxels(C.Caption(label, label))
        assert grid.shape == (32, 32, 32) and info["class"] == label
        assert grid.sum() >= 40, label
    small, _ = C.caption_voxels(C.Caption("small chair", "chair", resolution=16))
    assert small.shape == (16, 16, 16) and small.any()


def test_latents_for_other_weights_are_refused(tmp_path):
    from safetensors.numpy import save_file

    for f in default_weights_dir().iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    save_file({"car": np.zeros((1, 256), np.float32)}, str(tmp_path / C.LATENTS_FILE),
              metadata={"ae_sha256": "0" * 64})  # fmt: skip
    with pytest.raises(C.CaptionError, match="other autoencoder"):
        C.load_class_latents(tmp_path)
    (tmp_path / C.LATENTS_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(C.CaptionError, match="not a readable"):
        C.load_class_latents(tmp_path)
    (tmp_path / C.LATENTS_FILE).unlink()
    with pytest.raises(C.CaptionError, match="is missing"):
        C.load_class_latents(tmp_path)


def test_medoids_are_real_members_biggest_cluster_first():
    from image2lego.training.class_latents import class_latents

    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    sizes = [30, 12, 5]
    z = np.concatenate([c + rng.normal(0, 0.3, (n, 2)) for c, n in zip(centres, sizes)])
    labels = np.array(["x"] * len(z))
    grids = np.arange(len(z))  # stand-ins: encode looks the latent up by row

    def decode(lat):  # the third cluster decodes to almost nothing: left out
        return np.array([np.ones(100) * (la[1] < 5) for la in lat])

    out = class_latents(grids, labels, lambda g: z[g], decode, per_class=100, variants=3)
    got = out["x"]
    assert len(got) == 2
    for row in got:  # each variant is one of the inputs, not an average
        assert np.any(np.all(np.isclose(z, row), axis=1))
    assert np.linalg.norm(got[0] - centres[0]) < 1 and np.linalg.norm(got[1] - centres[1]) < 1


def test_cli_builds_a_caption_with_its_colour(tmp_path, capsys):
    out = tmp_path / "o"
    argv = ["caption", "a", "small", "red", "sofa", "-o", str(out)]
    rc = cli.main([*argv, "--no-render", "--no-instructions", "--no-blend", "-q"])
    assert rc == 0, capsys.readouterr().err
    rep = json.loads((out / "report.json").read_text())
    assert rep["caption"]["class"] == "sofa" and rep["caption"]["resolution"] == 16
    assert rep["bricks"] > 10 and rep["colors"] == 1 and rep["connected"]
    codes = {ln.split()[1] for ln in (out / "model.ldr").read_text().splitlines()
             if ln.startswith("1 ")}  # fmt: skip
    assert codes == {"4"}  # Red
    assert cli.main(["caption", "a", "spaceship", "-o", str(tmp_path / "x")]) == 2
    assert "I can build" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_in_the_style_of_blends_the_two_classes_latents():
    c = C.parse_caption("a chair in the style of a sofa")
    assert (c.label, c.blend, c.notes) == ("chair", "sofa", ())
    mixed, info = C.caption_voxels(c)
    chair, _ = C.caption_voxels(C.parse_caption("a chair"))
    sofa, _ = C.caption_voxels(C.parse_caption("a sofa"))
    assert info["blend"] == "sofa" and mixed.any()
    assert not np.array_equal(mixed, chair) and not np.array_equal(mixed, sofa)

    # closer to each parent than the parents are to each other
    def iou(a, b):
        return (a & b).sum() / (a | b).sum()

    assert min(iou(mixed, chair), iou(mixed, sofa)) > iou(chair, sofa)


def test_text_is_the_same_command_as_caption(tmp_path):
    out = tmp_path / "t"
    assert cli.main(["text", "a", "lamp", "-o", str(out), "--no-render", "--no-instructions",
                     "--no-blend", "-q"]) == 0  # fmt: skip
    assert json.loads((out / "report.json").read_text())["caption"]["class"] == "lamp"

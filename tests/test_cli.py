"""The headless CLI: ``python -m image2lego``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from image2lego.cli import main
from image2lego.lego import ldraw
from image2lego.lego.convert import ConvertOptions, voxels_to_bricks

from .conftest import REPO

FAST = ["--no-render", "--no-instructions", "--no-blend", "-q"]


def _grid():
    g = np.zeros((10, 10, 8), bool)
    g[1:9, 1:9, 0:4] = True
    g[3:7, 3:7, 4:8] = True
    return g


def test_help_runs_as_module():
    proc = subprocess.run(
        [sys.executable, "-m", "image2lego", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0
    for flag in ("--out", "--resolution", "--scale", "--bricks", "--hollow", "--color-mode"):
        assert flag in proc.stdout


def test_voxel_file_to_outputs(tmp_path):
    src = tmp_path / "shape.npy"
    np.save(src, _grid())
    out = tmp_path / "out"
    assert main([str(src), "-o", str(out), *FAST]) == 0
    names = {p.name for p in out.iterdir()}
    assert {
        "model.ldr",
        "model.mpd",
        "parts.csv",
        "bricklink.xml",
        "rebrickable.csv",
        "voxels.npy",
        "report.json",
    } <= names
    assert not [n for n in names if n.endswith(".tmp")]
    # The LDraw file is exactly what lego/ writes for the same grid and options.
    model = voxels_to_bricks(_grid(), options=ConvertOptions())
    parsed = ldraw.parse_ldr(out / "model.ldr")
    assert sorted(parsed.bricks) == sorted(model.bricks)
    report = json.loads((out / "report.json").read_text())
    assert report["bricks"] == len(model) and report["connected"] is True
    assert report["voxels"] == int(_grid().sum())
    total = sum(
        int(line.rsplit(",", 1)[1]) for line in (out / "parts.csv").read_text().splitlines()[1:]
    )
    assert total == len(model)


def test_prints_the_stability_report(tmp_path, capsys):
    src = tmp_path / "shape.npy"
    np.save(src, _grid())
    assert (
        main(
            [
                str(src),
                "-o",
                str(tmp_path / "out"),
                "--no-render",
                "--no-instructions",
                "--no-blend",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "Stability: stable" in out and "Stability (clutch" not in out  # short summary
    assert len(out.splitlines()) <= 15
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["stable"] is True and report["max_stress"] <= 1
    rep = report["repair"]
    assert rep["after"]["stable"] is True and rep["added_cells"] >= 0 and "before" in rep


@pytest.mark.parametrize("flags, repair_on, reinforce", [
    ([], True, True), (["--no-reinforce"], True, False), (["--no-repair"], False, False),
])  # fmt: skip
def test_repair_flags_reach_the_repair(tmp_path, monkeypatch, flags, repair_on, reinforce):
    from image2lego.core import pipeline

    calls = []
    real = pipeline.repair

    def spy(model, **kw):
        calls.append(kw)
        return real(model, **kw)

    monkeypatch.setattr(pipeline, "repair", spy)
    src = tmp_path / "shape.npy"
    np.save(src, _grid())
    assert main([str(src), "-o", str(tmp_path / "out"), "--formats", "ldr", *FAST, *flags]) == 0
    assert len(calls) == int(repair_on)
    if repair_on:
        assert calls[0]["reinforce"] is reinforce


def test_npz_with_int_grid_and_options(tmp_path):
    src = tmp_path / "shape.npz"
    np.savez(src, voxels=_grid().astype(np.uint8))
    out = tmp_path / "out"
    rc = main(
        [
            str(src),
            "-o",
            str(out),
            "--bricks",
            "plates",
            "--scale",
            "paper",
            "--formats",
            "ldr",
            *FAST,
        ]
    )
    assert rc == 0
    model = ldraw.parse_ldr(out / "model.ldr")
    assert {b.part.kind for b in model.bricks} == {"plate"}
    assert not (out / "model.mpd").exists()


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _save(path, array):
    np.save(path, array)
    return path


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: d / "missing.npy", "not found"),
        (lambda d: _write(d / "x.txt", b"hi"), "unsupported input"),
        (lambda d: _save(d / "i.npy", np.full((4, 4, 4), 2)), "0 and 1"),
        (lambda d: _save(d / "f.npy", np.ones((4, 4, 4))), "bool"),
        (lambda d: _save(d / "e.npy", np.zeros((4, 4, 4), bool)), "empty"),
        (lambda d: _save(d / "t.npy", np.ones((4, 4), bool)), "3-D"),
        (lambda d: _write(d / "c.npy", b"\x93NUMPY garbage"), "numpy"),
    ],
    ids=["missing", "suffix", "int", "float", "empty", "2d", "corrupt"],
)
def test_bad_input_is_a_clear_error(tmp_path, capsys, setup, message):
    src = setup(tmp_path)
    out = tmp_path / "out"
    assert main([str(src), "-o", str(out), *FAST]) == 2
    err = capsys.readouterr().err
    assert "error" in err and message.lower() in err.lower(), err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_folder(tmp_path, capsys):
    src = tmp_path / "shape.npy"
    np.save(src, _grid())
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    assert main([str(src), "-o", str(locked / "out"), *FAST]) == 2
    assert "output folder" in capsys.readouterr().err


def test_output_path_is_a_file(tmp_path, capsys):
    src = tmp_path / "shape.npy"
    np.save(src, _grid())
    blocker = tmp_path / "out"
    blocker.write_text("not a folder")
    assert main([str(src), "-o", str(blocker), *FAST]) == 2
    assert "output folder" in capsys.readouterr().err
    assert blocker.read_text() == "not a folder"


@pytest.mark.slow
def test_blender_products(tmp_path):
    """With bpy: render.png, the instruction booklet and model.blend (in a fresh process)."""
    pytest.importorskip("bpy")
    src = tmp_path / "shape.npy"
    g = np.zeros((6, 6, 4), bool)
    g[1:5, 1:5, 0:2] = True
    g[2:4, 2:4, 2:4] = True
    np.save(src, g)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "image2lego", str(src), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Blender's own log ("Saved: '…'" per render, EGL notes) is captured, not shown; the
    # summary stays short.
    assert "Saved:" not in proc.stdout + proc.stderr and "EGL" not in proc.stdout + proc.stderr
    assert proc.stdout.startswith("Built ") and len(proc.stdout.splitlines()) <= 15
    assert "instructions.pdf" in proc.stdout
    from PIL import Image

    render = np.asarray(Image.open(out / "render.png").convert("L"))
    assert render.shape == (900, 1200) and (render < 250).mean() > 0.01  # the model is there
    assert (out / "model.blend").stat().st_size > 10_000
    html = (out / "instructions.html").read_text()
    steps = sorted((out / "instructions_images").glob("step_*.png"))
    assert steps and all(p.name in html for p in steps)
    assert (out / "instructions.pdf").read_bytes().startswith(b"%PDF")
    # issue #22: no hidden scratch (.model.*.blend1, .i2l-*) left, modes as the umask says
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    mask = os.umask(0)
    os.umask(mask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir() if p.is_file()}
    assert set(modes.values()) == {0o666 & ~mask}, modes


def test_missing_weights_is_a_clear_error(tmp_path, capsys):
    pytest.importorskip("torch")
    from PIL import Image

    img = np.full((64, 64, 4), 0, np.uint8)
    img[16:48, 16:48] = (200, 120, 60, 255)
    src = tmp_path / "photo.png"
    Image.fromarray(img, "RGBA").save(src)
    empty = tmp_path / "no_weights"
    empty.mkdir()
    out = tmp_path / "out"
    assert main([str(src), "-o", str(out), "--weights", str(empty), *FAST]) == 2
    err = capsys.readouterr().err
    assert "error" in err and "no_weights" in err, err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("flags, dropped", [([], 1), (["--keep-fragments"], 0)])
def test_floating_specks_of_a_prediction_are_dropped(tmp_path, monkeypatch, flags, dropped):
    """A predicted speck touching nothing could never be attached: photos drop it by default
    (report.json says how many cells), ``--keep-fragments`` keeps it."""
    from image2lego.core import npnet

    body = np.zeros((32, 32, 32), bool)
    body[8:24, 8:24, 0:10] = True
    speck = np.zeros_like(body)
    speck[30, 30, 30] = True

    class FakePredictor:
        def predict(self, image, resolutions=(32,)):
            return {r: body | speck for r in resolutions}

    monkeypatch.setattr(npnet, "load_predictor", lambda *a, **k: FakePredictor())
    src = REPO / "examples" / "chair.png"
    out = tmp_path / "out"
    assert main([str(src), "-o", str(out), "--formats", "ldr", "--no-repair", *FAST, *flags]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["fragments_dropped_cells"] == dropped
    assert report["voxels"] == int(body.sum()) + 1 - dropped
    assert report["connected"] is (dropped == 1)


def test_mask_and_crop_reach_preprocessing(tmp_path, monkeypatch, capsys):
    """--mask FILE and --crop L,T,R,B: the user helps background removal; a bad value is a
    one-line error and writes nothing."""
    from PIL import Image

    from image2lego.core import npnet, preprocess

    body = np.zeros((32, 32, 32), bool)
    body[8:24, 8:24, 0:10] = True
    seen = {}

    class FakePredictor:
        def predict(self, image, resolutions=(32,)):
            return {r: body for r in resolutions}

    real = preprocess.preprocess_image

    def spy(image, *a, **kw):
        seen.update(kw)
        return real(image, *a, **kw)

    monkeypatch.setattr(npnet, "load_predictor", lambda *a, **k: FakePredictor())
    monkeypatch.setattr(preprocess, "preprocess_image", spy)
    src = tmp_path / "photo.png"
    photo = np.full((90, 120, 3), 210, np.uint8)
    photo[25:65, 40:80] = (40, 60, 90)  # the object
    Image.fromarray(photo).save(src)
    mask = np.zeros((90, 120), np.uint8)
    mask[20:70, 30:90] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    args = [str(src), "--formats", "ldr", "--no-repair", *FAST]
    assert main([*args, "-o", str(tmp_path / "a"), "--mask", str(tmp_path / "mask.png")]) == 0
    assert seen["mask"].shape == (90, 120) and seen["mask"].sum() == 50 * 60
    assert main([*args, "-o", str(tmp_path / "b"), "--crop", "10,5,110,85"]) == 0
    assert seen["rect"] == (10, 5, 110, 85)
    capsys.readouterr()
    assert main([*args, "-o", str(tmp_path / "c"), "--crop", "10,5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "crop must be left,top,right,bottom" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())


def test_every_user_error_derives_from_the_one_base():
    from image2lego.core.npnet import WeightsError as NumpyWeightsError
    from image2lego.core.preprocess import ImageError
    from image2lego.core.weights import WeightsError
    from image2lego.lego.errors import Image2LegoError
    from image2lego.lego.ldraw import LDrawError
    from image2lego.lego.partslist import UnmappedColorError

    for cls, builtin in (
        (ImageError, ValueError),
        (WeightsError, RuntimeError),
        (NumpyWeightsError, RuntimeError),
        (LDrawError, ValueError),
        (UnmappedColorError, ValueError),
    ):
        assert issubclass(cls, Image2LegoError) and issubclass(cls, builtin), cls


def test_a_user_error_from_deep_inside_is_one_line(tmp_path, capsys, monkeypatch):
    """Any Image2LegoError becomes ``image2lego: error: …`` and exit 2; a plain bug is raised."""
    from image2lego.core import pipeline
    from image2lego.lego.errors import Image2LegoError

    src = tmp_path / "g.npy"
    np.save(src, _grid())

    def boom(*a, **k):
        raise Image2LegoError("the thing is broken")

    monkeypatch.setattr(pipeline, "voxels_to_lego_steps", boom)
    assert main([str(src), "-o", str(tmp_path / "out"), *FAST]) == 2
    assert capsys.readouterr().err.strip() == "image2lego: error: the thing is broken"

    def bug(*a, **k):
        raise RuntimeError("a bug")

    monkeypatch.setattr(pipeline, "voxels_to_lego_steps", bug)
    with pytest.raises(RuntimeError, match="a bug"):
        main([str(src), "-o", str(tmp_path / "out2"), *FAST])


def test_quiet_and_verbose_map_to_log_levels(tmp_path, capsys):
    src = tmp_path / "g.npy"
    np.save(src, _grid())
    base = [str(src), "--no-render", "--no-instructions", "--no-blend", "--formats", "ldr"]
    assert main([*base, "-o", str(tmp_path / "a")]) == 0
    normal = capsys.readouterr().out
    assert normal.startswith("Built ") and "model.ldr" in normal and '"bricks"' not in normal
    assert main([*base, "-o", str(tmp_path / "b"), "-q"]) == 0
    assert capsys.readouterr().out == ""
    assert main([*base, "-o", str(tmp_path / "c"), "-v"]) == 0
    verbose = capsys.readouterr().out
    assert "[100%] Done" in verbose and '"bricks"' in verbose  # stages and the full report
    import logging

    assert not logging.getLogger("image2lego").handlers  # detached after each command


def test_verbose_shows_the_full_report_and_blender_log(tmp_path, capsys):
    src = tmp_path / "shape.npy"
    np.save(src, _grid())
    args = [str(src), "-o", str(tmp_path / "out"), "--no-render", "--no-instructions"]
    assert main([*args, "--no-blend", "-v"]) == 0
    out = capsys.readouterr().out
    assert "Stability (clutch" in out and '"bricks"' in out  # the full report with -v
    assert main([*args, "--no-blend", "-q"]) == 0
    assert capsys.readouterr().out == ""  # -q: nothing but warnings and errors


def test_64_from_a_photo_needs_weights_with_a_64_level(tmp_path, capsys):
    """-r 64 is offered; with weights that stop at 32³ it is one clear line and nothing written
    (training/level64.py makes weights with a 64³ level)."""
    torch = pytest.importorskip("torch")
    from image2lego.core.model import ImageEncoder, OctreeAutoencoder
    from image2lego.core.weights import save_weights

    from .tiny_model import TINY

    torch.manual_seed(0)
    w32 = tmp_path / "w32"
    save_weights(w32, OctreeAutoencoder(TINY).eval(), ImageEncoder(TINY).eval(),
                 {r: 0.0 for r in (4, 8, 16, 32)})  # fmt: skip
    out = tmp_path / "out"
    img = Path(__file__).resolve().parents[1] / "examples" / "chair.png"
    assert main([str(img), "-o", str(out), "-r", "64", "--weights", str(w32), *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "64³ needs weights with a 64³ level" in err, err
    assert not out.exists() or not any(out.iterdir())

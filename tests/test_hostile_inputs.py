"""Hostile inputs end in a one-line error, not a traceback, hang or blow-up (issue #22)."""

from __future__ import annotations

import io
import json
import shutil
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from image2lego.cli import main
from image2lego.core import pipeline, weights
from image2lego.core.inputs import read_voxel_file
from image2lego.lego.errors import Image2LegoError

from .conftest import REPO

FAST = ["--no-render", "--no-instructions", "--no-blend", "-q"]


def _grid():
    g = np.zeros((6, 6, 4), bool)
    g[1:5, 1:5, 0:3] = True
    return g


def _npy_header(shape, descr="|b1") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(_npy_header((10**5,) * 3)), "exceeds the limit"),
        (lambda p: p.write_bytes(_npy_header((200, 200, 200))), "truncated"),
        (lambda p: p.write_bytes(_npy_header((4, 4, 4), "|O")), "Python objects"),
        (lambda p: p.write_bytes(_npy_header((4, 4, 4), "<f4") + bytes(256)), "dtype float32"),
        (lambda p: p.write_bytes(_npy_header((16, 16)) + bytes(256)), "must be 3-D"),
        (lambda p: p.write_bytes(b"\x93NUMPY\x01\x00garbage"), "not a readable numpy"),
        (lambda p: p.write_bytes(b"hello"), "not a numpy"),
        (lambda p: p.write_bytes(b""), "not a numpy"),
        (lambda p: np.save(p, np.zeros((4, 4, 4), bool)), "empty"),
        (lambda p: np.save(p, np.full((4, 4, 4), 2, np.int8)), "only 0 and 1"),
        (lambda p: p.mkdir(), "not a regular file"),
    ],
)
def test_bad_npy_is_a_clear_error(tmp_path, make, message):
    p = tmp_path / "g.npy"
    make(p)
    with pytest.raises(Image2LegoError, match=message) as info:
        read_voxel_file(p)
    assert isinstance(info.value, ValueError)  # the built-in base older callers catch
    assert "\n" not in str(info.value)


def test_npz_renamed_npy_is_read_as_what_it_is(tmp_path):
    p = tmp_path / "g.npz"
    np.savez_compressed(p, voxels=_grid())
    q = tmp_path / "g.npy"
    shutil.copy(p, q)
    assert (read_voxel_file(q) == _grid()).all()


def test_npz_bombs_and_ambiguity(tmp_path):
    p = tmp_path / "bomb.npz"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("voxels.npy", _npy_header((256, 256, 256), "<i8") + bytes(1000))
    with pytest.raises(ValueError, match="truncated"):
        read_voxel_file(p)
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("voxels.npy", _npy_header((300, 4, 4)))
    with pytest.raises(ValueError, match="exceeds the limit"):
        read_voxel_file(p)
    np.savez(p, a=_grid(), b=_grid())
    with pytest.raises(ValueError, match="name the grid 'voxels'"):
        read_voxel_file(p)
    p.write_bytes(b"PK\x03\x04broken")
    with pytest.raises(ValueError, match="not a readable .npz"):
        read_voxel_file(p)


def test_api_arguments_are_type_checked():
    with pytest.raises(TypeError, match="PipelineOptions"):
        pipeline.run(pipeline.voxels_to_lego_steps(_grid(), "x"))
    with pytest.raises(TypeError, match="ConvertOptions"):
        pipeline.run(pipeline.voxels_to_lego_steps(_grid(), pipeline.PipelineOptions(convert=3)))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        pipeline.run(pipeline.voxels_to_lego_steps([[[1]]]))


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("latent_dim", 10**7, "latent_dim must be integers in"),
        ("latent_dim", -5, "latent_dim must be integers in"),
        ("latent_dim", True, "latent_dim"),
        ("dec_channels", [16] * 40, "entries"),
        ("dec_channels", 16, "list of integers"),
        ("img_channels", [96, -1], "img_channels"),
        ("img_hidden", 1.5, "img_hidden"),
    ],
)
def test_hostile_weights_config_is_refused_before_building(tmp_path, key, value, message):
    d = tmp_path / "w"
    shutil.copytree(REPO / "weights", d)
    doc = json.loads((d / weights.META_FILE).read_text())
    doc["config"][key] = value
    (d / weights.META_FILE).write_text(json.dumps(doc))
    with pytest.raises(weights.WeightsError, match=message):
        weights.load_weights(d)
    from image2lego.core import npnet  # the default (numpy) runtime checks the same ranges

    with pytest.raises(npnet.WeightsError, match=message):
        npnet.load_predictor(d)


def test_weights_file_name_cannot_leave_the_folder(tmp_path):
    d = tmp_path / "w"
    shutil.copytree(REPO / "weights", d)
    doc = json.loads((d / weights.META_FILE).read_text())
    doc["files"]["autoencoder"]["name"] = "../../etc/passwd"
    (d / weights.META_FILE).write_text(json.dumps(doc))
    with pytest.raises(weights.WeightsError, match="plain file name"):
        weights.load_weights(d)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--resolution", "7"], "invalid choice"),
        (["--bogus"], "unrecognized arguments"),
        (["-o", ""], "must name a folder"),
        (["-o", " "], "must name a folder"),
        (["--color", "99999"], "--color 99999 is not an LDraw"),
        (["--palette", "99999"], "--palette entry '99999'"),
        (["--palette", "4,x"], "--palette entry 'x'"),
        (["--color", "219"], "no bricklink colour id"),
        (["-k", "0"], "--colors must be in"),
        (["--wall", "0"], "--wall must be in"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, argv, message):
    src = tmp_path / "g.npy"
    np.save(src, _grid())
    out = tmp_path / "out"
    argv = [str(src), *(["-o", str(out)] if "-o" not in argv else []), *argv, *FAST]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and err.startswith("image2lego: error: ")
    assert not out.exists()


def test_newline_in_file_name_is_refused_before_work(tmp_path, capsys):
    src = tmp_path / "a\nb.npy"
    np.save(src, _grid())
    assert main([str(src), "-o", str(tmp_path / "out"), *FAST]) == 2
    assert "single line" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("odd", ["a\nb", "a\rb", "tab\there", "bell\x07", "del\x7f", "c1\x85"])
def test_control_characters_in_file_names_are_refused_by_the_api(tmp_path, odd):
    """Not only the CLI: every reader and the output writer refuse such a name up front, in
    one line, before any work (it used to be processed fully, then refused by the LDraw
    title check)."""
    from image2lego import outputs
    from image2lego.core.preprocess import load_mask, preprocess_image

    src = tmp_path / f"{odd}.npy"
    np.save(src, _grid())
    readers = [
        lambda: read_voxel_file(src),
        lambda: pipeline.load_voxel_file(src),
        lambda: preprocess_image(tmp_path / f"{odd}.png"),
        lambda: load_mask(str(tmp_path / f"{odd}.png")),
    ]
    for read in readers:
        with pytest.raises(Image2LegoError, match="single line without control characters"):
            read()
    result = pipeline.run(pipeline.voxels_to_lego_steps(_grid()))
    plain = dict(formats=["ldr"], render=False, instructions=False, blend=False)
    with pytest.raises(ValueError, match="output folder must be a single line") as e:
        outputs.write_all(result, tmp_path / f"out{odd}", **plain)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="source file name must be a single line"):
        outputs.write_all(result, tmp_path / "out", source=src, **plain)
    assert not any(p.name.startswith("out") for p in tmp_path.iterdir())
    assert outputs.write_all(result, tmp_path / "fine", source=tmp_path / "ok.npy", **plain)


def test_ctrl_c_is_one_line(tmp_path, capsys, monkeypatch):
    src = tmp_path / "g.npy"
    np.save(src, _grid())

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "voxels_to_lego_steps", interrupt)
    assert main([str(src), "-o", str(tmp_path / "out"), *FAST]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" in err


def _overhang():
    g = _grid()
    g[1:3, 1:3, 3] = True
    g[0, 1:3, 3] = True  # sticks out over nothing
    return g


def test_big_models_skip_the_repair_with_a_warning():
    opts = pipeline.PipelineOptions(repair_max_bricks=2)
    result = pipeline.run(pipeline.voxels_to_lego_steps(_overhang(), opts))
    assert result.stability is None
    assert any("over the repair limit of 2" in w for w in result.model.meta["warnings"])
    result = pipeline.run(pipeline.voxels_to_lego_steps(_overhang()))  # small: repaired
    assert result.stability is not None
    # no brick overhangs: checked in linear time whatever the size
    result = pipeline.run(pipeline.voxels_to_lego_steps(_grid(), opts))
    assert result.stability is not None and result.stability.stability.stable
    assert not result.model.meta.get("warnings")
    with pytest.raises(ValueError, match="repair_max_bricks"):
        pipeline.run(
            pipeline.voxels_to_lego_steps(_grid(), pipeline.PipelineOptions(repair_max_bricks=-1))
        )


def test_a_stability_check_over_its_budget_stops_with_a_warning(monkeypatch):
    # Every check shares one wall-clock budget (ANALYSIS_BUDGET_S); past it the model is built
    # unchecked, with a one-line warning naming the budget, instead of running for minutes.
    from image2lego.lego import repair as repair_mod

    monkeypatch.setattr(repair_mod, "ANALYSIS_BUDGET_S", 1e-9)
    result = pipeline.run(pipeline.voxels_to_lego_steps(_overhang()))
    assert result.stability is None
    (note,) = [w for w in result.model.meta["warnings"] if "stability not checked" in w]
    assert "did not finish within its budget" in note and "\n" not in note


def test_huge_model_lattice_is_refused_not_allocated():
    from image2lego.lego.bricks import Brick, BrickModel
    from image2lego.lego.stability import analyze_stability

    model = BrickModel(bricks=[Brick(0, 0, 0, "3001", False, 4, 0)], shape=(10**6,) * 3)
    with pytest.raises(ValueError, match="over the limit"):
        analyze_stability(model)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=16, max_size=16), st.sampled_from(["mixed", "plates"]))
def test_fully_supported_models_skip_the_lp_with_the_lps_verdict(heights, bricks):
    """A height map (every column filled from the ground) never overhangs: the fast check
    decides it without the LP, and the LP, forced, finds the same zero-tension verdict."""
    from image2lego.lego import stability
    from image2lego.lego.convert import ConvertOptions, voxels_to_bricks

    h = np.array(heights).reshape(4, 4)
    if not h.any():
        h[0, 0] = 1
    g = np.arange(6)[None, None, :] < h[:, :, None]
    model = voxels_to_bricks(g, options=ConvertOptions(brick_types=bricks))
    assert stability.fully_supported(model)
    fast = stability.analyze_stability(model)
    real = stability._fully_supported
    try:
        stability._fully_supported = lambda arr, c: False  # force the LP
        exact = stability.analyze_stability(model)
    finally:
        stability._fully_supported = real
    assert fast.stable == exact.stable and fast.unsupported == exact.unsupported
    np.testing.assert_allclose(fast.stress, exact.stress, atol=1e-6)


def test_an_overhang_is_not_fully_supported():
    from image2lego.lego import stability
    from image2lego.lego.bricks import Brick, BrickModel

    model = BrickModel([Brick(0, 0, 0, "3004"), Brick(3, 0, 1, "3008")], (10, 2, 6))
    assert not stability.fully_supported(model)
    assert stability.analyze_stability(model).max_stress > 0.0
    assert not stability.fully_supported(BrickModel([], (2, 2, 3)))

"""All-or-nothing output folders (issue #22): a failed, interrupted or concurrent run never
leaves a folder that mixes two results, and leaves no hidden scratch behind."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import threading
import time

import numpy as np
import pytest

from image2lego import outputs
from image2lego.cli import main
from image2lego.core import pipeline
from image2lego.lego import ldraw, partslist, staging
from image2lego.lego.errors import Image2LegoError

FAST = ["--no-render", "--no-instructions", "--no-blend", "-q"]


def _grid(h: int) -> np.ndarray:
    g = np.zeros((6, 6, 8), bool)
    g[1:5, 1:5, :h] = True
    return g


def _result(h: int) -> pipeline.PipelineResult:
    return pipeline.run(pipeline.voxels_to_lego_steps(_grid(h)))


def _snapshot(folder) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def _run_cli(tmp_path, out, h: int, *extra: str) -> int:
    src = tmp_path / f"shape{h}.npy"
    np.save(src, _grid(h))
    return main([str(src), "-o", str(out), *FAST, *extra])


def _consistent(out) -> int:
    """The folder holds one run's products: LDraw, MPD, parts list, voxels and report agree.
    Returns the voxel count."""
    import json

    voxels = np.load(out / "voxels.npy")
    report = json.loads((out / "report.json").read_text())
    assert report["voxels"] == int(voxels.sum())
    ldr = ldraw.parse_ldr(out / "model.ldr")
    mpd = ldraw.parse_ldr(out / "model.mpd")
    assert sorted(ldr.bricks) == sorted(mpd.bricks)
    assert report["bricks"] == len(ldr)
    total = sum(
        int(line.rsplit(",", 1)[1]) for line in (out / "parts.csv").read_text().splitlines()[1:]
    )
    assert total == len(ldr)
    return int(voxels.sum())


def _no_scratch(out) -> None:
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    "late_writer",
    ["report", "voxels", "parts"],
)
def test_a_late_failure_leaves_the_earlier_result_whole(tmp_path, monkeypatch, late_writer):
    out = tmp_path / "out"
    outputs.write_all(_result(3), out, render=False, instructions=False, blend=False)
    before = _snapshot(out)

    def disk_full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    if late_writer == "report":  # the last plain file: everything else was already staged
        monkeypatch.setattr(outputs, "atomic_write_text", disk_full)
    elif late_writer == "voxels":
        monkeypatch.setattr(outputs, "atomic_write_bytes", disk_full)
    else:
        real = partslist.write_parts

        def third(model, path, fmt="csv", **k):
            if fmt == "rebrickable":
                disk_full()
            return real(model, path, fmt=fmt, **k)

        monkeypatch.setattr(partslist, "write_parts", third)
    with pytest.raises(Image2LegoError, match="No space left.*left as it was"):
        outputs.write_all(_result(6), out, render=False, instructions=False, blend=False)
    assert _snapshot(out) == before
    _no_scratch(out)


def test_unmapped_colour_found_late_changes_nothing(tmp_path, capsys):
    """Issue #22: ``--color 219`` (no BrickLink id) used to replace model.ldr, model.mpd and
    parts.csv before failing. Now the CLI refuses it up front, and the writer itself, fed such
    a model, fails without touching the folder."""
    out = tmp_path / "out"
    assert _run_cli(tmp_path, out, 3) == 0
    before = _snapshot(out)
    assert _run_cli(tmp_path, out, 6, "--color", "219") == 2
    assert "bricklink" in capsys.readouterr().err.lower()
    assert _snapshot(out) == before
    result = _result(6)
    for i, b in enumerate(result.model.bricks):
        result.model.bricks[i] = dataclasses.replace(b, color=219)
    with pytest.raises(partslist.UnmappedColorError):
        outputs.write_all(result, out, render=False, instructions=False, blend=False)
    assert _snapshot(out) == before
    _no_scratch(out)


def test_ctrl_c_after_the_swap_says_the_new_result_is_there(tmp_path, monkeypatch, capsys):
    """Ctrl-C while the summary prints (the new result already swapped in): the message says the
    folder holds this run's complete result, not that it was left as it was."""
    from image2lego import cli

    out = tmp_path / "out"
    assert _run_cli(tmp_path, out, 3) == 0

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "summary_lines", interrupted)
    assert _run_cli(tmp_path, out, 6, "-v") == 130
    err = capsys.readouterr().err
    assert f"this run's result was already written in full to {out}" in err, err
    assert "left as it was" not in err
    assert _consistent(out) == int(_grid(6).sum())
    _no_scratch(out)


def test_ctrl_c_mid_write_leaves_the_folder_as_it_was(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    assert _run_cli(tmp_path, out, 3) == 0
    before = _snapshot(out)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(outputs, "atomic_write_text", interrupted)
    assert _run_cli(tmp_path, out, 6) == 130
    assert "left as it was" in capsys.readouterr().err
    assert _snapshot(out) == before
    _no_scratch(out)


def test_first_run_that_fails_leaves_no_folder(tmp_path, monkeypatch):
    out = tmp_path / "new" / "out"

    def disk_full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs, "atomic_write_text", disk_full)
    with pytest.raises(OSError):
        outputs.write_all(_result(3), out, render=False, instructions=False, blend=False)
    assert not (tmp_path / "new").exists()


def test_folder_deleted_mid_run_is_an_error_not_success(tmp_path, monkeypatch, capsys):
    import shutil

    out = tmp_path / "out"
    assert _run_cli(tmp_path, out, 3) == 0
    real = outputs.summary

    def delete_then_summarise(result):
        shutil.rmtree(out)
        return real(result)

    monkeypatch.setattr(outputs, "summary", delete_then_summarise)
    assert _run_cli(tmp_path, out, 6) == 2
    err = capsys.readouterr().err
    assert "output folder" in err and len(err.strip().splitlines()) == 1


def test_a_run_removes_the_earlier_runs_products_it_does_not_make(tmp_path):
    out = tmp_path / "out"
    (tmp_path / "keep").mkdir()
    assert _run_cli(tmp_path, out, 3) == 0
    (out / "notes.txt").write_text("the user's own file")
    assert _run_cli(tmp_path, out, 6, "--formats", "ldr") == 0
    names = {p.name for p in out.iterdir()}
    assert names == {"model.ldr", "voxels.npy", "report.json", "notes.txt"}
    assert (out / "notes.txt").read_text() == "the user's own file"


def test_a_run_nested_inside_another_never_interleaves(tmp_path, monkeypatch):
    """Run B starts and finishes while run A is between writers; A then swaps in its own
    complete set: the folder is all A, never A's LDraw with B's MPD."""
    out = tmp_path / "out"
    a, b = _result(3), _result(6)
    real = outputs.summary
    nested = []

    def with_b_meanwhile(result):
        if not nested:
            nested.append(1)
            outputs.write_all(b, out, render=False, instructions=False, blend=False)
            assert _consistent(out) == int(b.voxels.sum())
        return real(result)

    monkeypatch.setattr(outputs, "summary", with_b_meanwhile)
    outputs.write_all(a, out, render=False, instructions=False, blend=False)
    assert _consistent(out) == int(a.voxels.sum())
    _no_scratch(out)


def test_concurrent_runs_into_one_folder_never_mix(tmp_path):
    out = tmp_path / "out"
    results = [_result(h) for h in (2, 3, 5, 7)]
    errors = []

    def worker(r):
        try:
            for _ in range(3):
                outputs.write_all(r, out, render=False, instructions=False, blend=False)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(r,)) for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert _consistent(out) in {int(r.voxels.sum()) for r in results}
    _no_scratch(out)


def test_stale_staging_of_killed_runs_is_cleaned(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dead = out / f"{staging.STAGE_PREFIX}{staging._host_tag()}-999999999-abc"
    dead.mkdir()
    (dead / "model.ldr").write_text("half")
    old = out / ".i2l-instructions-xyz"
    old.mkdir()
    day_ago = time.time() - 2 * staging.STALE_AFTER_S
    os.utime(old, (day_ago, day_ago))
    fresh = out / ".i2l-instructions-live"  # a running renderer's: young, left alone
    fresh.mkdir()
    outputs.write_all(_result(3), out, render=False, instructions=False, blend=False)
    names = {p.name for p in out.iterdir()}
    assert dead.name not in names and old.name not in names and fresh.name in names


def test_files_follow_the_umask(tmp_path):
    out = tmp_path / "out"
    old = os.umask(0o027)
    try:
        outputs.write_all(_result(3), out, render=False, instructions=False, blend=False)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert set(modes.values()) == {0o640}, modes


def test_blender_output_writer_is_all_or_nothing_too(tmp_path, monkeypatch):
    pytest.importorskip("bpy")
    from image2lego.blender import jobs

    out = tmp_path / "out"
    jobs.write_outputs(_result(3).model, out, "Model")
    before = _snapshot(out)

    def disk_full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(partslist, "write_parts", disk_full)  # the second of its two files
    with pytest.raises(jobs.JobError, match="No space left"):
        jobs.write_outputs(_result(6).model, out, "Model")
    assert _snapshot(out) == before
    _no_scratch(out)


def test_blender_products_over_their_limits_are_refused_before_anything_is_written(
    tmp_path, monkeypatch, capsys
):
    """Issue #22: a 128³ solid has ~3,000 instruction steps (each a render: most of an hour);
    such products are refused in one line before any is started, and nothing is written."""
    if not outputs.has_bpy():
        pytest.skip("the limits apply to Blender products")
    result = _result(6)
    steps = result.model.n_steps()
    assert steps > 2
    with pytest.raises(outputs.OutputLimitError, match=f"{steps} steps, over the limit of 2"):
        outputs.write_all(result, tmp_path / "a", render=False, blend=False, max_steps=2)
    with pytest.raises(outputs.OutputLimitError, match="over the limit of 3 for the render"):
        outputs.write_all(result, tmp_path / "a", instructions=False, max_bricks=3)
    assert not (tmp_path / "a").exists()
    # the same model without the products over their limits, or with a limit lifted, is fine
    outputs.check_output_limits(result.model, True, False, True, max_steps=2)
    outputs.check_output_limits(result.model, True, True, True, max_steps=float("inf"))
    # through the CLI: exit 2, one line, an earlier result untouched
    out = tmp_path / "out"
    assert _run_cli(tmp_path, out, 3) == 0
    before = _snapshot(out)
    capsys.readouterr()
    monkeypatch.setattr(outputs, "MAX_INSTRUCTION_STEPS", 2)
    src = tmp_path / "shape6.npy"
    np.save(src, _grid(6))
    assert main([str(src), "-o", str(out), "--no-render", "--no-blend", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "over the limit of 2" in err[0] and "--no-instructions" in err[0]
    assert _snapshot(out) == before
    _no_scratch(out)


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="RLIMIT_FSIZE is POSIX")
def test_a_real_write_failure_in_a_real_process_leaves_the_earlier_result_whole(tmp_path):
    """Issue #22's full disk, without root: a CLI process whose files may not pass 32 KiB
    (RLIMIT_FSIZE; Python ignores SIGXFSZ, so the write fails with EFBIG) ends with one line
    and exit 2, and the earlier result is byte for byte what it was, with no scratch left."""
    import resource
    import subprocess
    import sys

    out = tmp_path / "out"
    assert _run_cli(tmp_path, out, 3) == 0
    before = _snapshot(out)
    big = np.zeros((40, 40, 40), bool)
    big[:, :, :20] = True  # its model.ldr is well over 32 KiB
    np.save(tmp_path / "big.npy", big)

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (32 * 1024, 32 * 1024))

    p = subprocess.run(
        [sys.executable, "-m", "image2lego", str(tmp_path / "big.npy"), "-o", str(out), *FAST],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        check=False,
    )
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1, p.stderr
    assert "File too large" in lines[0] and "left as it was" in lines[0]
    assert _snapshot(out) == before
    _no_scratch(out)

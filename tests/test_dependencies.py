"""The add-on's dependency pins are the versions the project is tested with and bundles."""

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


def test_dependency_pins_match_the_lock_and_the_bundled_wheels():
    import importlib.util

    from image2lego.blender import preferences as prefs

    spec = importlib.util.spec_from_file_location(
        "build_ext", REPO / "tools" / "build_extension.py"
    )
    build_ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_ext)
    lock = _lock()
    bundled = {p.lower() for p in build_ext.pins()}
    for pin in prefs.DEPENDENCIES.values():
        name, ver = pin.split("==")
        assert lock.get(name.lower()) == ver, f"{pin} differs from requirements.lock"
        assert pin.lower() in bundled, f"{pin} is not bundled as a wheel"
    assert not any(p.startswith(("numpy", "torch")) for p in bundled)
    assert prefs.missing_dependencies() == []  # the test venv has everything


def test_bundled_wheels_hold_their_whole_dependency_closure():
    """Every requirement of a bundled package (in this venv's metadata) is bundled too, or is
    numpy (Blender ships it): a missing one fails only inside Blender (it did: cloudpickle)."""
    import importlib.util
    import re
    from importlib import metadata

    spec = importlib.util.spec_from_file_location(
        "build_ext", REPO / "tools" / "build_extension.py"
    )
    build_ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_ext)

    def norm(n):
        return re.sub(r"[-_.]+", "-", n).lower()

    bundled = {norm(p) for p in build_ext.RUNTIME_PACKAGES}
    for pkg in build_ext.RUNTIME_PACKAGES:
        for req in metadata.requires(pkg) or []:
            if "extra ==" in req:
                continue
            name = norm(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0])
            assert name in bundled | {"numpy"}, f"{pkg} needs {name}, which is not bundled"

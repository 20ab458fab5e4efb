"""Shared fixtures. Tests that need ../shared/data or bpy skip cleanly without them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One worker per core: a second BLAS/OpenMP thread per worker only spins against the other
    # worker (test_sparse.py under load: 8.5 s CPU with one thread, 22 s with two).
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = "1"


# Property tests draw the same examples on every run by default ("ci"), so a red CI run can be
# reproduced and a green one is not luck; HYPOTHESIS_PROFILE=explore draws fresh examples (and
# keeps a local example database) to look for new failures.
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def load_script(relpath: str, name: str | None = None):
    """A repository script (tools/, benchmarks/) imported as a module, for tests of its
    functions."""
    import importlib.util

    path = REPO / relpath
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def shared_data_dir() -> Path | None:
    env = os.environ.get("IMAGE2LEGO_DATA")
    p = Path(env) if env else REPO.parent / "shared" / "data"
    return p if p.is_dir() else None


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    p = shared_data_dir()
    if p is None:
        pytest.skip("../shared/data is absent (set IMAGE2LEGO_DATA to run data tests)")
    return p


@pytest.fixture(scope="session")
def ldraw_library(shared_data: Path) -> Path:
    p = shared_data / "ldraw"
    if not (p / "LDConfig.ldr").is_file():
        pytest.skip("LDraw library subset is absent from ../shared/data/ldraw")
    return p

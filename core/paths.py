"""Where the shared data and the derived caches live.

* Shared data (read only, never part of the repository): ``$IMAGE2LEGO_DATA`` or
  ``../shared/data`` relative to the repository root.
* Derived caches (voxel sets, rendered views, extracted meshes): ``$IMAGE2LEGO_CACHE`` or
  ``~/.cache/image2lego``. Never inside the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir(path: str | Path | None = None, *, must_exist: bool = True) -> Path:
    """The shared data folder: ``path``, else ``$IMAGE2LEGO_DATA``, else ``../shared/data``."""
    if path is None:
        env = os.environ.get("IMAGE2LEGO_DATA")
        p = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    else:
        p = Path(path)
    p = p.expanduser()
    if must_exist and not p.is_dir():
        raise FileNotFoundError(
            f"shared data folder {p} does not exist; pass --data DIR or set IMAGE2LEGO_DATA"
        )
    return p


def cache_dir(path: str | Path | None = None, *, create: bool = True) -> Path:
    """The cache folder: ``path``, else ``$IMAGE2LEGO_CACHE``, else ``~/.cache/image2lego``."""
    if path is None:
        env = os.environ.get("IMAGE2LEGO_CACHE")
        p = Path(env) if env else Path.home() / ".cache" / "image2lego"
    else:
        p = Path(path)
    p = p.expanduser()
    if create:
        p.mkdir(parents=True, exist_ok=True)
    return p

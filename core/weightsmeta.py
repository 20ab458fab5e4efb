"""What both runtimes (torch: :mod:`.weights`, numpy: :mod:`.npnet`) share about the shipped
weights, without torch: file names, the format version, the one :class:`WeightsError`, the
checked metadata reader and the resolution check."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from ..lego.errors import Image2LegoError

FORMAT_VERSION = 1
META_FILE = "tl_octree.json"
AE_FILE = "tl_octree_ae.safetensors"
IMAGE_FILE = "tl_octree_image.safetensors"


class WeightsError(Image2LegoError, RuntimeError):
    """A weight file is missing, corrupt or does not match the model."""


def default_weights_dir() -> Path:
    """``weights/`` beside the package's modules (the repository root when run from a clone)."""
    return Path(__file__).resolve().parents[1] / "weights"


def read_meta(weights_dir: str | Path | None = None) -> dict:
    """``tl_octree.json`` of ``weights_dir`` (default :func:`default_weights_dir`), checked:
    a JSON object of this :data:`FORMAT_VERSION` with ``config``, ``thresholds``, ``files``."""
    d = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    path = d / META_FILE
    if not path.is_file():
        raise WeightsError(f"{path}: weight metadata file is missing")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise WeightsError(f"{path}: expected a JSON object")
    ver = doc.get("format_version")
    if ver != FORMAT_VERSION:
        raise WeightsError(
            f"{path}: format_version {ver!r} is not supported (this code reads {FORMAT_VERSION})"
        )
    for key in ("config", "thresholds", "files"):
        if key not in doc:
            raise WeightsError(f"{path}: missing key {key!r}")
    try:
        _checked_config(doc["config"])
    except (TypeError, ValueError) as e:
        raise WeightsError(f"{path}: bad config ({e})") from None
    return doc


def resolutions_of(weights_dir: str | Path | None = None) -> tuple[int, ...]:
    """The resolutions the weights in ``weights_dir`` decode (4, 8, 16, 32, and 64 with a 64³
    level), from their metadata alone: no tensor read, no torch (Blender's menus ask this)."""
    doc = read_meta(weights_dir)
    n = len(doc["config"].get("dec_channels", (256, 96, 128, 96, 16)))
    return tuple(2 ** (i + 1) for i in range(n) if 2 ** (i + 1) >= 4)


def check_resolutions(resolutions: Iterable[int], available: tuple[int, ...]) -> tuple[int, ...]:
    """``resolutions`` as ints, each one of ``available`` (what the loaded weights have)."""
    res = tuple(int(r) for r in resolutions)
    if not res:
        raise ValueError("resolutions is empty")
    bad = [r for r in res if r not in available]
    if bad:
        extra = (
            " (64³ needs weights with a 64³ level, see training/level64.py)"
            if any(r > max(available, default=0) for r in bad)
            else ""
        )
        raise ValueError(f"unsupported resolution(s) {bad}; these weights have {available}{extra}")
    return res


#: Ranges a weights configuration must lie in, so a hostile ``tl_octree.json`` (``latent_dim``
#: 10**7, negative widths) is refused before any network is built (the shipped values are far
#: inside: latent 256, widths <= 1024).
_CONFIG_RANGES = {
    "latent_dim": (1, 4096),
    "dec_channels": (1, 2048),
    "enc_channels": (1, 2048),
    "img_channels": (1, 2048),
    "img_hidden": (1, 8192),
    "conv3_max_res": (0, 64),
    "conv1_max_res": (0, 64),
    "bottleneck_max_res": (0, 64),
    "bottleneck": (1, 2048),
    "conv3_extra": (1, 64),
}
_CONFIG_LENGTHS = {"dec_channels": (1, 6), "enc_channels": (1, 8), "img_channels": (1, 8)}


def _checked_config(cfg) -> dict:
    if not isinstance(cfg, dict):
        raise TypeError("config must be a JSON object")
    for key, (lo, hi) in _CONFIG_RANGES.items():
        if key not in cfg:
            continue
        v = cfg[key]
        vals = v if isinstance(v, list) else [v]
        if isinstance(v, list):
            n_lo, n_hi = _CONFIG_LENGTHS.get(key, (0, 8))
            if not n_lo <= len(v) <= n_hi:
                raise ValueError(f"config {key} must have {n_lo}..{n_hi} entries, got {len(v)}")
        elif key in _CONFIG_LENGTHS or key == "conv3_extra":
            raise ValueError(f"config {key} must be a list of integers")
        for x in vals:
            if isinstance(x, bool) or not isinstance(x, int) or not lo <= x <= hi:
                raise ValueError(f"config {key} must be integers in [{lo}, {hi}], got {x!r}")
    return cfg

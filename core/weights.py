"""Shipped TL-Octree weights: safetensors files + a JSON of metadata, loaded with checks.

Files (in ``weights/`` at the repository/package root unless another folder is given):

* ``tl_octree.json`` - format version, model configuration (channels, resolutions), decision
  thresholds per resolution, training data/commit and measured figures;
* ``tl_octree_ae.safetensors`` - the 3D autoencoder (``encoder.*`` and ``decoder.*``);
* ``tl_octree_image.safetensors`` - the image encoder.

Floating-point tensors are stored as float16 to keep the repository small (the evaluation
measures the IoU change; see MODEL_CARD.md) and converted to float32 on load. Anything wrong -
a missing or truncated file, a checksum mismatch, an unknown format version, a missing or
wrongly shaped tensor - raises :class:`WeightsError` naming the file and the problem.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..lego.fileio import atomic_write_bytes
from .model import ImageEncoder, ModelConfig, OctreeAutoencoder, head_resolutions
from .weightsmeta import (  # noqa: F401  (re-exported: the weights' public names)
    AE_FILE,
    FORMAT_VERSION,
    IMAGE_FILE,
    META_FILE,
    WeightsError,
    default_weights_dir,
    read_meta,
)


@dataclass
class LoadedWeights:
    config: ModelConfig
    meta: dict
    thresholds: dict[int, float]  # logit thresholds for the autoencoder's own latents
    autoencoder: OctreeAutoencoder | None = None
    image_encoder: ImageEncoder | None = None
    files: dict[str, Path] = field(default_factory=dict)
    #: thresholds for latents predicted from images (chosen on image predictions at export;
    #: the autoencoder's when the weights have none)
    image_thresholds: dict[int, float] = field(default_factory=dict)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _to_storage(state: dict[str, torch.Tensor], fp16: bool) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in state.items():
        v = v.detach().cpu().contiguous()
        if fp16 and v.is_floating_point():
            v = v.half()
        out[k] = v
    return out


def save_weights(
    out_dir: str | Path,
    autoencoder: OctreeAutoencoder,
    image_encoder: ImageEncoder | None,
    thresholds: dict[int, float],
    meta: dict | None = None,
    fp16: bool = True,
) -> dict[str, Path]:
    """Write the three files atomically; returns their paths."""
    from safetensors.torch import save

    out = Path(out_dir)
    files = {"autoencoder": out / AE_FILE}
    blobs = {"autoencoder": save(_to_storage(autoencoder.state_dict(), fp16))}
    if image_encoder is not None:
        files["image_encoder"] = out / IMAGE_FILE
        blobs["image_encoder"] = save(_to_storage(image_encoder.state_dict(), fp16))
    for k, path in files.items():
        atomic_write_bytes(path, blobs[k], mkdir=True)
    doc = {
        "format_version": FORMAT_VERSION,
        "model": "TL-Octree (octree autoencoder + image encoder), image2lego",
        "config": autoencoder.cfg.to_dict(),
        "resolutions": list(head_resolutions(autoencoder.cfg)),
        "thresholds": {str(r): float(t) for r, t in thresholds.items()},
        "dtype": "float16" if fp16 else "float32",
        "files": {
            k: {"name": p.name, "sha256": hashlib.sha256(blobs[k]).hexdigest()}
            for k, p in files.items()
        },
        **(meta or {}),
    }
    meta_path = out / META_FILE
    atomic_write_bytes(meta_path, (json.dumps(doc, indent=2) + "\n").encode(), mkdir=True)
    files["meta"] = meta_path
    return files


def _load_into(module: nn.Module, path: Path, expected_sha: str | None) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise WeightsError(f"{path}: weight file is missing")
    if expected_sha is not None and _sha256(path) != expected_sha:
        raise WeightsError(
            f"{path}: checksum mismatch (file is corrupt, truncated or from another training "
            "run than its tl_octree.json)"
        )
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({e})") from None
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    if missing:
        raise WeightsError(
            f"{path}: missing tensors {missing[:5]}{' …' if len(missing) > 5 else ''}"
        )
    if extra:
        raise WeightsError(
            f"{path}: unexpected tensors {extra[:5]}{' …' if len(extra) > 5 else ''}"
        )
    for k, v in own.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise WeightsError(
                f"{path}: tensor {k!r} has shape {tuple(tensors[k].shape)}, "
                f"the model expects {tuple(v.shape)}"
            )
    module.load_state_dict({k: t.to(own[k].dtype) for k, t in tensors.items()})


def load_weights(
    weights_dir: str | Path | None = None, parts: tuple[str, ...] = ("autoencoder", "image_encoder")
) -> LoadedWeights:
    """Build the networks from ``weights_dir`` (default: the shipped ``weights/``) in eval mode.

    ``parts`` picks which networks to load ("autoencoder", "image_encoder")."""
    d = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    doc = read_meta(d)
    meta_path = d / META_FILE
    try:
        cfg = ModelConfig.from_dict(doc["config"])  # range-checked by read_meta
        thresholds = {int(r): float(t) for r, t in doc["thresholds"].items()}
        ithr = doc.get("image_thresholds") or {}
        image_thresholds = thresholds | {int(r): float(t) for r, t in ithr.items()}
    except (TypeError, ValueError, AttributeError, OverflowError) as e:
        raise WeightsError(f"{meta_path}: bad config or thresholds ({e})") from None
    out = LoadedWeights(
        config=cfg, meta=doc, thresholds=thresholds, image_thresholds=image_thresholds
    )
    for part in parts:
        if part not in ("autoencoder", "image_encoder"):
            raise ValueError(f"unknown part {part!r}")
        info = doc["files"].get(part) if isinstance(doc["files"], dict) else None
        if info is None:
            raise WeightsError(f"{meta_path}: lists no {part} file")
        name = info.get("name") if isinstance(info, dict) else None
        if not isinstance(name, str) or not name or Path(name).name != name:
            raise WeightsError(f"{meta_path}: {part} file name must be a plain file name")
        module = OctreeAutoencoder(cfg) if part == "autoencoder" else ImageEncoder(cfg)
        path = d / info["name"]
        _load_into(module, path, info.get("sha256"))
        module.eval()
        setattr(out, part, module)
        out.files[part] = path
    return out

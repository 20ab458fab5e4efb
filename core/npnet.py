"""The shipped TL-Octree network run with numpy only: Blender users never need torch.

:class:`NumpyPredictor` has :class:`core.inference.Predictor`'s ``predict`` / ``predict_batch``
/ ``reconstruct`` API and reads the same safetensors files (``safetensors.numpy``: no torch).
BatchNorm is folded into the preceding convolution, convolutions are im2col + matrix products
(float32), the decoder keeps :mod:`core.model`'s sparse semantics on dense arrays (pruned cells
carry zero features and the logit :data:`PRUNED_LOGIT`). ``tests/test_npnet.py`` checks that it
matches the torch path: logits within 1e-3 and the same voxels on validation images.

:func:`load_predictor` picks the backend: ``"numpy"`` (always available), ``"torch"``, or
``"auto"`` (numpy; torch only when asked through ``IMAGE2LEGO_BACKEND=torch``).

This module never imports torch.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .pieces import connect_pieces
from .weightsmeta import META_FILE, WeightsError, default_weights_dir, read_meta
from .weightsmeta import check_resolutions as _check_resolutions

PRUNED_LOGIT = -20.0  # same as core.model.PRUNED_LOGIT (a test keeps them equal)
OUTPUT_RESOLUTIONS = (4, 8, 16, 32)
IMAGE_SIZE = 128
BN_EPS = 1e-5


# --------------------------------------------------------------------------- weights


def _read_tensors(path: Path, sha: str | None) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load

    if not path.is_file():
        raise WeightsError(f"{path}: weight file is missing")
    data = path.read_bytes()
    if sha is not None and hashlib.sha256(data).hexdigest() != sha:
        raise WeightsError(
            f"{path}: checksum mismatch (corrupt, truncated or from another training run)"
        )
    try:
        tensors = load(data)
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({e})") from None
    return {k: np.asarray(v, dtype=np.float32) for k, v in tensors.items()}


class _Params:
    """Tensor access with a clear error for a missing one; remembers which keys were used."""

    def __init__(self, tensors: dict[str, np.ndarray], path: Path):
        self.t, self.path = tensors, path
        self.used: set[str] = set()

    def __call__(self, key: str) -> np.ndarray:
        if key not in self.t:
            raise WeightsError(f"{self.path}: missing tensor {key!r}")
        self.used.add(key)
        return self.t[key]

    def has(self, key: str) -> bool:
        return key in self.t

    def bn(self, prefix: str) -> tuple[np.ndarray, np.ndarray]:
        """BatchNorm (eval) as a per-channel scale and shift."""
        self(f"{prefix}.num_batches_tracked") if self.has(f"{prefix}.num_batches_tracked") else None
        g, b = self(f"{prefix}.weight"), self(f"{prefix}.bias")
        m, v = self(f"{prefix}.running_mean"), self(f"{prefix}.running_var")
        s = g / np.sqrt(v + BN_EPS)
        return s.astype(np.float32), (b - m * s).astype(np.float32)

    def check_all_used(self) -> None:
        extra = sorted(set(self.t) - self.used)
        if extra:
            raise WeightsError(f"{self.path}: unexpected tensors {extra[:5]}")


# --------------------------------------------------------------------------- ops


def _elu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0))).astype(np.float32, copy=False)


def _conv2d(x: np.ndarray, w: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """x (B, C, H, W), w (O, C, k, k) → (B, O, H', W') by im2col."""
    b, c, h, wd = x.shape
    o, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho = (h + 2 * pad - k) // stride + 1
    wo = (wd + 2 * pad - k) // stride + 1
    cols = np.empty((b, ho, wo, c, k, k), np.float32)
    for i in range(k):
        for j in range(k):
            cols[:, :, :, :, i, j] = xp[
                :, :, i : i + stride * ho : stride, j : j + stride * wo : stride
            ].transpose(0, 2, 3, 1)
    out = cols.reshape(b * ho * wo, c * k * k) @ w.reshape(o, -1).T
    return out.reshape(b, ho, wo, o).transpose(0, 3, 1, 2)


def _conv3d(x: np.ndarray, w: np.ndarray, stride: int = 1, pad: int = 0) -> np.ndarray:
    """x (B, C, D, H, W), w (O, C, k, k, k) → (B, O, D', H', W')."""
    b, c = x.shape[:2]
    o, _, k = w.shape[:3]
    if k == 1 and stride == 1:
        return np.einsum("bcdhw,oc->bodhw", x, w[:, :, 0, 0, 0], optimize=True)
    xp = np.pad(x, ((0, 0), (0, 0)) + ((pad, pad),) * 3) if pad else x
    n = [(s + 2 * pad - k) // stride + 1 for s in x.shape[2:]]
    cols = np.empty((b, *n, c, k, k, k), np.float32)
    for i in range(k):
        for j in range(k):
            for m in range(k):
                cols[..., i, j, m] = xp[
                    :,
                    :,
                    i : i + stride * n[0] : stride,
                    j : j + stride * n[1] : stride,
                    m : m + stride * n[2] : stride,
                ].transpose(0, 2, 3, 4, 1)
    out = cols.reshape(-1, c * k**3) @ w.reshape(o, -1).T
    return out.reshape(b, *n, o).transpose(0, 4, 1, 2, 3)


def _up2(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Transposed convolution kernel 2 stride 2: x (B, C, n, n, n), w (C, O, 2, 2, 2)."""
    b, _, d, h, wd = x.shape
    o = w.shape[1]
    y = np.einsum("bcijk,coxyz->boixjykz", x, w, optimize=True)
    return y.reshape(b, o, 2 * d, 2 * h, 2 * wd)


def _affine(x: np.ndarray, sb: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    s, b = sb
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return x * s.reshape(shape) + b.reshape(shape)


def _maxpool2(x: np.ndarray) -> np.ndarray:
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def _upsample_mask(m: np.ndarray) -> np.ndarray:
    return m.repeat(2, axis=2).repeat(2, axis=3).repeat(2, axis=4)


# --------------------------------------------------------------------------- network


@dataclass
class NumpyNet:
    config: dict
    thresholds: dict[int, float]
    image_thresholds: dict[int, float]
    ae: _Params | None = None
    img: _Params | None = None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def autoencoder(self) -> _Params:
        if self.ae is None:
            raise RuntimeError("these weights have no autoencoder")
        return self.ae

    @property
    def dec_resolutions(self) -> tuple[int, ...]:
        return tuple(2 ** (i + 1) for i in range(len(self.config["dec_channels"])))

    # ------------------------------------------------------------------ image encoder
    def encode_image(self, img: np.ndarray) -> np.ndarray:
        """uint8 (B, 128, 128) → latents (B, 256)."""
        p = self.img
        if p is None:
            raise RuntimeError("these weights have no image encoder")
        x = (img.astype(np.float32) / 255.0 * 2.0 - 1.0)[:, None]
        # features: (conv, bn, elu) + pool, four times; Sequential indices 0..15
        for conv_i, stride in ((0, 2), (4, 1), (8, 1), (12, 1)):
            w = p(f"features.{conv_i}.weight")
            x = _elu(
                _affine(_conv2d(x, w, stride, w.shape[-1] // 2), p.bn(f"features.{conv_i + 1}"))
            )
            x = _maxpool2(x)
        h = x.reshape(x.shape[0], -1)
        h = _elu(h @ p("fc.2.weight").T + p("fc.2.bias"))
        return (h @ p("fc.5.weight").T + p("fc.5.bias")).astype(np.float32)

    # ------------------------------------------------------------------ voxel encoder
    def encode_voxels(self, grid: np.ndarray) -> np.ndarray:
        """bool (B, 32, 32, 32) → latents (B, 256)."""
        p = self.autoencoder
        x = (grid.astype(np.float32) * 2.0 - 1.0)[:, None]
        n = len(self.config["enc_channels"])
        for i in range(n):
            last = i == n - 1
            w = p(f"encoder.net.{3 * i}.weight")
            x = _conv3d(x, w, stride=2, pad=0 if last else 1)
            x = _elu(_affine(x, p.bn(f"encoder.net.{3 * i + 1}")))
        h = x.reshape(x.shape[0], -1)
        return (h @ p("encoder.fc.weight").T + p("encoder.fc.bias")).astype(np.float32)

    # ------------------------------------------------------------------ decoder
    def _block(self, i: int, x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        p, pre = self.autoencoder, f"decoder.blocks.{i}"
        x = _elu(_affine(_up2(x, p(f"{pre}.up.weight")), p.bn(f"{pre}.bn")))
        if mask is not None:
            x = x * mask
        if p.has(f"{pre}.conv.weight"):  # a full 3³ or a 1³ convolution
            w = p(f"{pre}.conv.weight")
            y = _conv3d(x, w, pad=w.shape[-1] // 2)
        elif p.has(f"{pre}.conv.0.weight"):  # bottleneck 1³ → BN ELU → 3³ → BN ELU → 1³
            y = _elu(_affine(_conv3d(x, p(f"{pre}.conv.0.weight")), p.bn(f"{pre}.conv.1")))
            y = _elu(_affine(_conv3d(y, p(f"{pre}.conv.3.weight"), pad=1), p.bn(f"{pre}.conv.4")))
            y = _conv3d(y, p(f"{pre}.conv.6.weight"))
        else:
            return x
        x = _elu(_affine(y, p.bn(f"{pre}.bn2"))) + x
        if mask is not None:
            x = x * mask
        return x

    def decode_steps(self, z: np.ndarray, thresholds: dict[int, float], max_res: int):
        """Latents (B, 256) → yields ``(res, logits (B, 1, r, r, r))`` level by level."""
        p = self.autoencoder
        x = z.reshape(z.shape[0], -1, 1, 1, 1).astype(np.float32)
        mask = None
        for i, res in enumerate(self.dec_resolutions):
            if res > max_res:
                break
            x = self._block(i, x, mask)
            if p.has(f"decoder.heads.{res}.weight"):
                logit = _conv3d(x, p(f"decoder.heads.{res}.weight")) + p(
                    f"decoder.heads.{res}.bias"
                ).reshape(1, -1, 1, 1, 1)
                if mask is not None:
                    logit = np.where(mask > 0, logit, np.float32(PRUNED_LOGIT))
                pred = (logit > thresholds.get(res, 0.0)).astype(np.float32)
                if mask is not None:
                    pred = pred * mask
                mask = _upsample_mask(pred)
                yield res, logit
            elif mask is not None:
                mask = _upsample_mask(mask)

    def decode(self, z, thresholds, max_res) -> dict[int, np.ndarray]:
        return dict(self.decode_steps(z, thresholds, max_res))


def load_net(
    weights_dir: str | Path | None = None, parts: tuple[str, ...] = ("autoencoder", "image_encoder")
) -> NumpyNet:
    d = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    doc = read_meta(d)
    try:
        thr = {int(r): float(t) for r, t in doc["thresholds"].items()}
        ithr = thr | {int(r): float(t) for r, t in (doc.get("image_thresholds") or {}).items()}
        cfg = dict(doc["config"])
        cfg["dec_channels"] = list(cfg.get("dec_channels", (256, 96, 128, 96, 16)))
        cfg["enc_channels"] = list(cfg.get("enc_channels", (32, 64, 96, 128, 256)))
    except (TypeError, ValueError, AttributeError) as e:
        raise WeightsError(f"{d / META_FILE}: bad config or thresholds ({e})") from None
    net = NumpyNet(config=cfg, thresholds=thr, image_thresholds=ithr)
    for part in parts:
        info = doc["files"].get(part)
        if info is None:
            raise WeightsError(f"{d / META_FILE}: lists no {part} file")
        path = d / info["name"]
        params = _Params(_read_tensors(path, info.get("sha256")), path)
        setattr(net, "ae" if part == "autoencoder" else "img", params)
        net.files[part] = path
    return net


# --------------------------------------------------------------------------- predictor


def prepare_image(image: Any) -> np.ndarray:
    """Path / PIL image → preprocessed uint8 (128, 128); such an array passes (checked)."""
    if isinstance(image, np.ndarray):
        arr = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
        if arr.shape != (IMAGE_SIZE, IMAGE_SIZE) or arr.dtype != np.uint8:
            raise ValueError(
                f"a preprocessed image must be uint8 ({IMAGE_SIZE}, {IMAGE_SIZE}), got "
                f"{arr.dtype} {arr.shape}; pass a path or PIL image to preprocess it"
            )
        return arr
    if isinstance(image, str | os.PathLike) or hasattr(image, "getpixel"):
        from .preprocess import preprocess_image

        return prepare_image(preprocess_image(image).image)
    raise TypeError(
        f"image must be a path, a PIL image or a uint8 (128, 128) array, not {type(image)}"
    )


class NumpyPredictor:
    """Image → voxels and voxels → voxels with the numpy runtime (same API as ``Predictor``)."""

    backend = "numpy"

    def __init__(self, net: NumpyNet):
        self.net = net
        self.thresholds = dict(net.thresholds)
        self.image_thresholds = dict(net.image_thresholds)

    @classmethod
    def load(cls, weights_dir: str | Path | None = None) -> NumpyPredictor:
        return cls(load_net(weights_dir))

    @property
    def resolutions(self) -> tuple[int, ...]:
        """The output resolutions these weights have."""
        heads = self.net.autoencoder
        return tuple(r for r in self.net.dec_resolutions if heads.has(f"decoder.heads.{r}.weight"))

    def prepare_image(self, image: Any) -> np.ndarray:
        return prepare_image(image)

    def _grids(
        self, logits, res, thresholds, n, one_piece: bool = False
    ) -> list[dict[int, np.ndarray]]:
        return [
            {
                r: (
                    connect_pieces(logits[r][i, 0], thresholds.get(r, 0.0), pruned=PRUNED_LOGIT)
                    if one_piece and r >= 32  # the levels a model is built from
                    else (logits[r][i, 0] > thresholds.get(r, 0.0))
                    & (logits[r][i, 0] > PRUNED_LOGIT)
                )
                for r in res
            }
            for i in range(n)
        ]

    def predict_latent(self, images: list[Any]) -> np.ndarray:
        return self.net.encode_image(np.stack([prepare_image(im) for im in images]))

    def predict(self, image: Any, resolutions: Iterable[int] = (32,)) -> dict[int, np.ndarray]:
        return self.predict_batch([image], resolutions)[0]

    def predict_logits(self, images: list[Any], max_res: int = 32) -> dict[int, np.ndarray]:
        z = self.predict_latent(images)
        return self.net.decode(z, self.image_thresholds, max_res)

    def predict_batch(
        self, images: list[Any], resolutions: Iterable[int] = (32,)
    ) -> list[dict[int, np.ndarray]]:
        res = _check_resolutions(resolutions, self.resolutions)
        logits = self.predict_logits(images, max(res))
        return self._grids(logits, res, self.image_thresholds, len(images), one_piece=True)

    def reconstruct(
        self, grid: np.ndarray, resolutions: Iterable[int] = OUTPUT_RESOLUTIONS
    ) -> dict[int, np.ndarray]:
        res = _check_resolutions(resolutions, self.resolutions)
        g = np.asarray(grid)
        if g.shape != (32, 32, 32):
            raise ValueError(f"reconstruct expects a (32, 32, 32) grid, got shape {g.shape}")
        z = self.net.encode_voxels(g[None])
        logits = self.net.decode(z, self.thresholds, max(res))
        return self._grids(logits, res, self.thresholds, 1)[0]


def torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def load_predictor(weights_dir: str | Path | None = None, backend: str | None = None):
    """The predictor for ``backend`` ("numpy", "torch" or "auto"; default: the environment's
    ``IMAGE2LEGO_BACKEND``, else "auto" = numpy, which needs no torch)."""
    backend = (backend or os.environ.get("IMAGE2LEGO_BACKEND") or "auto").lower()
    if backend not in ("auto", "numpy", "torch"):
        raise ValueError(f"unknown inference backend {backend!r}; use auto, numpy or torch")
    if backend == "torch":
        if not torch_available():
            raise ValueError("IMAGE2LEGO_BACKEND=torch but torch is not installed")
        from .inference import Predictor

        return Predictor.load(weights_dir)
    return NumpyPredictor.load(weights_dir)

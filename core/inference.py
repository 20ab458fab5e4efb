"""Inference with the shipped TL-Octree weights.

>>> from image2lego.core.inference import Predictor
>>> p = Predictor.load()                       # weights/ of the package, or a folder
>>> grids = p.predict("chair.jpg", resolutions=(8, 32))
>>> grids[32].shape, grids[32].dtype           # ((32, 32, 32), dtype('bool')), axes [x, y, z], Z up
>>> recon = p.reconstruct(grid32)              # 3D autoencoder round trip, for evaluation

``predict`` accepts a path, a PIL image, or an already preprocessed uint8 array (128, 128)
(grayscale, object centred on a white background, as :func:`core.preprocess.preprocess_image`
returns). The renderer that made the training views lives with the training code
(``image2lego.training.render``); the runtime needs only its camera (:mod:`.camera`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .model import OUTPUT_RESOLUTIONS, PRUNED_LOGIT, head_resolutions
from .pieces import connect_pieces
from .weights import LoadedWeights, load_weights
from .weightsmeta import check_resolutions as _check_resolutions

IMAGE_SIZE = 128


def _default_threads() -> int:
    """Up to 4 cores, or what ``OMP_NUM_THREADS`` says (the usual way to share a machine)."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(4, os.cpu_count() or 1))


class Predictor:
    """Image → voxels (image encoder + octree decoder) and voxels → voxels (autoencoder)."""

    def __init__(self, weights: LoadedWeights, threads: int | None = None):
        self.weights = weights
        self.thresholds = dict(weights.thresholds)  # autoencoder round trips
        self.image_thresholds = dict(weights.image_thresholds or weights.thresholds)  # photos
        self.threads = threads or _default_threads()

    @classmethod
    def load(cls, weights_dir: str | Path | None = None, threads: int | None = None) -> Predictor:
        """Load the shipped weights (or those in ``weights_dir``); raises ``WeightsError``."""
        return cls(load_weights(weights_dir), threads=threads)

    # ---------------------------------------------------------------------------------------
    @property
    def config(self):
        return self.weights.config

    def _run(self, fn):
        old = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                return fn()
        finally:
            torch.set_num_threads(old)

    @property
    def resolutions(self) -> tuple[int, ...]:
        """The resolutions these weights can decode (4, 8, 16, 32, and 64 with a 64³ level)."""
        return head_resolutions(self.config)

    def _decode(
        self,
        z: torch.Tensor,
        resolutions: tuple[int, ...],
        thresholds: dict[int, float],
        one_piece: bool = False,
    ) -> list[dict[int, np.ndarray]]:
        ae = self.weights.autoencoder
        assert ae is not None  # load_weights always builds it
        dec = ae.decoder
        if max(resolutions) > 32 or self.config.absent_neighbours != "dense":
            # above 32³ (or for weights trained with sparse semantics) only live cells are
            # computed: the dense path's memory grows with res³ (benchmarks/bench_sparse.py)
            from .sparse import SparseOctreeDecoder, decode_grids

            if not one_piece:
                return decode_grids(dec, z, resolutions, thresholds)
            sp = SparseOctreeDecoder(dec)
            levels = sp(z, mode="pred", thresholds=thresholds, max_res=max(resolutions))
            b = z.shape[0]
            out: list[dict[int, np.ndarray]] = [{} for _ in range(b)]
            for r in resolutions:
                dense = levels[r].to_dense(b).numpy()  # PRUNED_LOGIT where never computed
                for i in range(b):
                    if r >= 32:  # the levels a model is built from: one piece where possible
                        grid = connect_pieces(
                            dense[i, 0], thresholds.get(r, 0.0), pruned=PRUNED_LOGIT
                        )
                    else:
                        grid = (dense[i, 0] > thresholds.get(r, 0.0)) & (dense[i, 0] > PRUNED_LOGIT)
                    out[i][r] = grid
            return out
        logits = dec(z, mode="pred", thresholds=thresholds, max_res=max(resolutions))
        return [
            {
                r: (
                    connect_pieces(
                        logits[r][i, 0].numpy(), thresholds.get(r, 0.0), pruned=PRUNED_LOGIT
                    )
                    if one_piece and r == 32
                    else (
                        (logits[r][i, 0] > thresholds.get(r, 0.0))
                        & (logits[r][i, 0] > PRUNED_LOGIT)
                    ).numpy()
                )
                for r in resolutions
            }
            for i in range(z.shape[0])
        ]

    # ---------------------------------------------------------------------------------------
    def prepare_image(self, image: Any) -> np.ndarray:
        """Path / PIL image → preprocessed uint8 (128, 128); a uint8 (128, 128) array passes
        through (checked)."""
        if isinstance(image, np.ndarray):
            arr = image
            if arr.ndim == 3 and arr.shape[-1] == 1:
                arr = arr[..., 0]
            if arr.shape != (IMAGE_SIZE, IMAGE_SIZE):
                raise ValueError(
                    f"a preprocessed image must be ({IMAGE_SIZE}, {IMAGE_SIZE}) grayscale, "
                    f"got shape {arr.shape}; pass a path or PIL image to preprocess it"
                )
            if arr.dtype != np.uint8:
                raise ValueError(f"a preprocessed image must be uint8, got {arr.dtype}")
            return arr
        if isinstance(image, str | os.PathLike) or hasattr(image, "getpixel"):
            from .preprocess import preprocess_image

            return self.prepare_image(preprocess_image(image).image)
        raise TypeError(
            f"image must be a path, a PIL image or a uint8 (128, 128) array, not {type(image)}"
        )

    def predict_latent(self, images: list[Any]) -> torch.Tensor:
        arr = np.stack([self.prepare_image(im) for im in images])
        enc = self.weights.image_encoder
        if enc is None:
            raise RuntimeError("these weights have no image encoder")
        return self._run(lambda: enc(torch.from_numpy(arr)[:, None]))

    def predict(self, image: Any, resolutions: Iterable[int] = (32,)) -> dict[int, np.ndarray]:
        """One image → ``{resolution: bool grid (r, r, r)}`` with axes [x, y, z], Z up."""
        return self.predict_batch([image], resolutions)[0]

    def predict_batch(
        self, images: list[Any], resolutions: Iterable[int] = (32,)
    ) -> list[dict[int, np.ndarray]]:
        res = _check_resolutions(resolutions, self.resolutions)
        z = self.predict_latent(images)
        # 32³ from a photo: floating pieces joined or dropped through the decoder's own
        # probabilities (core.pieces, MODEL_CARD.md "One piece")
        return self._run(lambda: self._decode(z, res, self.image_thresholds, one_piece=True))

    def reconstruct(
        self, grid: np.ndarray, resolutions: Iterable[int] = OUTPUT_RESOLUTIONS
    ) -> dict[int, np.ndarray]:
        """A 32³ occupancy grid → the autoencoder's reconstruction at ``resolutions``."""
        res = _check_resolutions(resolutions, self.resolutions)
        g = np.asarray(grid)
        if g.shape != (32, 32, 32):
            raise ValueError(f"reconstruct expects a (32, 32, 32) grid, got shape {g.shape}")
        x = torch.from_numpy(g.astype(np.float32))[None, None]

        def fn():
            z = self.weights.autoencoder.encoder(x)
            return self._decode(z, res, self.thresholds)[0]

        return self._run(fn)


# ------------------------------------------------------------------------------------------
# silhouette carving (stretch goal): the input's own mask, in the known set-pose camera


def project_voxels(grid: np.ndarray, view=None, size: int = IMAGE_SIZE) -> np.ndarray:
    """Pixel coordinates (N, 2) = (column, row; pixel centres at integers) in the *framed*
    ``size``² image of the centres of the occupied cells of ``grid``, seen by the set-pose
    camera (:func:`.camera.project`). Rows follow ``np.argwhere(grid)``."""
    from .camera import SET_POSE, project

    g = np.asarray(grid, dtype=bool)
    idx = np.argwhere(g)
    if len(idx) == 0:
        return np.zeros((0, 2))
    uv, _ = project(idx + 0.5, g, SET_POSE if view is None else view, size)
    return uv - 0.5


def silhouette_mask(image: np.ndarray, background: int = 255, tol: int = 8) -> np.ndarray:
    """The object's mask in a framed image on a plain background (rendered views)."""
    return np.asarray(image).astype(np.int16) < background - tol


def carve_by_silhouette(
    grid: np.ndarray, mask: np.ndarray, view=None, dilate: int = 2, min_keep: float = 0.5
) -> np.ndarray:
    """Remove occupied cells whose centre projects outside the (dilated) input mask.

    The framing is recomputed from the prediction's own silhouette box, so a prediction with
    a wrong extent would be misaligned: if carving would remove more than ``1 - min_keep`` of
    the cells the prediction is returned unchanged (the decoder's shape wins)."""
    from scipy import ndimage

    g = np.asarray(grid, dtype=bool)
    if not g.any():
        return g.copy()
    m = np.asarray(mask, dtype=bool)
    if dilate > 0:
        m = ndimage.binary_dilation(m, iterations=dilate)
    px = np.rint(project_voxels(g, view, m.shape[0])).astype(int)
    idx = np.argwhere(g)
    inside = (px[:, 0] >= 0) & (px[:, 0] < m.shape[1]) & (px[:, 1] >= 0) & (px[:, 1] < m.shape[0])
    keep = np.zeros(len(idx), bool)
    keep[inside] = m[px[inside, 1], px[inside, 0]]
    if keep.mean() < min_keep:
        return g.copy()
    out = np.zeros_like(g)
    out[tuple(idx[keep].T)] = True
    return out

"""The torch-free numpy runtime (core/npnet.py) gives the torch path's answers."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from image2lego.core import model as torch_model
from image2lego.core.inference import Predictor
from image2lego.core.model import ImageEncoder, OctreeAutoencoder
from image2lego.core.npnet import (
    PRUNED_LOGIT,
    NumpyPredictor,
    WeightsError,
    load_predictor,
)
from image2lego.core.weights import default_weights_dir, save_weights

from .conftest import REPO
from .tiny_model import TINY

LOGIT_TOL = 1e-3  # float32 im2col vs torch's kernels: observed ~2e-6 on the latents


def _images():
    """The example photo's network input and a few harder ones (a flipped copy, noise, a
    blank frame, bars), all preprocessed 128² uint8."""
    from image2lego.core.preprocess import preprocess_image

    chair = preprocess_image(str(REPO / "examples" / "chair.png")).image
    rng = np.random.default_rng(3)
    bars = np.full((128, 128), 255, np.uint8)
    bars[20:110, 30:50] = 60
    bars[20:40, 30:100] = 90
    return [chair, np.fliplr(chair).copy(), rng.integers(0, 256, (128, 128), np.uint8), bars]


def _torch_logits(p: Predictor, img: np.ndarray) -> dict[int, np.ndarray]:
    with torch.inference_mode():
        z = p.weights.image_encoder(torch.from_numpy(img[None])[:, None])
        out = p.weights.autoencoder.decoder(z, mode="pred", thresholds=p.image_thresholds)
    return {r: v.numpy() for r, v in out.items()}


def test_pruned_logit_is_the_models():
    assert PRUNED_LOGIT == torch_model.PRUNED_LOGIT


@pytest.mark.slow
def test_shipped_weights_same_voxels_and_logits_as_torch():
    pt, pn = Predictor.load(threads=1), NumpyPredictor.load()
    for img in _images():
        a = pt.predict(img, (4, 8, 16, 32))
        b = pn.predict(img, (4, 8, 16, 32))
        for r in (4, 8, 16, 32):
            np.testing.assert_array_equal(a[r], b[r], err_msg=f"resolution {r}")
        lt = _torch_logits(pt, img)  # every level the weights have (64³ with a 64³ level)
        ln = pn.predict_logits([img], max_res=max(lt))
        for r in lt:
            np.testing.assert_allclose(ln[r], lt[r], atol=LOGIT_TOL, rtol=0)
    assert a[32].any()


def test_shipped_weights_same_reconstruction_as_torch():
    pt, pn = Predictor.load(threads=1), NumpyPredictor.load()
    grid = pt.predict(_images()[0])[32]
    a, b = pt.reconstruct(grid), pn.reconstruct(grid)
    for r in a:
        np.testing.assert_array_equal(a[r], b[r])


def test_random_tiny_weights_match_torch(tmp_path):
    """Another architecture (TINY's channels and blocks) and random BatchNorm statistics: the
    numpy runtime follows the configuration, not one hard-coded network."""
    torch.manual_seed(1)
    ae, img = OctreeAutoencoder(TINY).eval(), ImageEncoder(TINY).eval()
    for m in list(ae.modules()) + list(img.modules()):
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    thr = {4: 0.0, 8: 0.0, 16: 0.0, 32: 0.0}
    save_weights(tmp_path, ae, img, thr, fp16=False)
    pt, pn = Predictor.load(tmp_path, threads=1), NumpyPredictor.load(tmp_path)
    for im in _images():
        lt, ln = _torch_logits(pt, im), pn.predict_logits([im])
        for r in lt:
            np.testing.assert_allclose(ln[r], lt[r], atol=LOGIT_TOL, rtol=0)


def test_bad_weights_are_clear_errors(tmp_path):
    with pytest.raises(WeightsError, match="metadata file is missing"):
        NumpyPredictor.load(tmp_path)
    for f in default_weights_dir().iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    ae = (
        tmp_path
        / json.loads((tmp_path / "tl_octree.json").read_text())["files"]["autoencoder"]["name"]
    )
    ae.write_bytes(ae.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="checksum mismatch"):
        NumpyPredictor.load(tmp_path)


def test_resolutions_are_those_of_the_weights():
    """The numpy runtime offers what the shipped weights decode (64³ with their 64³ level) and
    gives the torch runtime's voxels there too."""
    torch = pytest.importorskip("torch")
    from image2lego.core.inference import Predictor

    pn, pt = NumpyPredictor.load(), Predictor.load(threads=1)
    assert pn.resolutions == pt.resolutions and pn.resolutions[:4] == (4, 8, 16, 32)
    top = max(pn.resolutions)
    img = _images()[0]
    torch.manual_seed(0)
    np.testing.assert_array_equal(pn.predict(img, (top,))[top], pt.predict(img, (top,))[top])
    with pytest.raises(ValueError, match="these weights have"):
        pn.predict(img, (2 * top,))


def test_backend_choice(monkeypatch):
    assert isinstance(load_predictor(), NumpyPredictor)
    assert isinstance(load_predictor(backend="torch"), Predictor)
    with pytest.raises(ValueError, match="unknown inference backend"):
        load_predictor(backend="onnx")


def test_runs_without_torch():
    """Image → voxels in a Python where ``import torch`` fails (as in Blender)."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from image2lego.core.npnet import load_predictor\n"
        "img = np.full((128, 128), 255, np.uint8); img[30:110, 40:90] = 80\n"
        "print(int(load_predictor().predict(img)[32].sum()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) > 0

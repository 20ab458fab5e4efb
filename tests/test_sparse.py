"""The sparse octree decoder (core/sparse.py) against the dense one it must reproduce."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from image2lego.core.model import (
    PRUNED_LOGIT,
    ModelConfig,
    OctreeAutoencoder,
    head_resolutions,
    octree_loss,
    octree_targets,
)
from image2lego.core.sparse import (
    SparseOctreeDecoder,
    decode_grids,
    neighbour_index,
    sparse_octree_loss,
)
from image2lego.training.train import synthetic_shapes

# every block kind: full 3³ (2, 4), bottleneck 3³ (8, 16), 1³ (32) and a 64³ level
MIXED = ModelConfig(
    latent_dim=16,
    dec_channels=(16, 16, 12, 8, 6, 4),
    enc_channels=(4, 8, 8, 16, 16),
    conv3_max_res=4,
    conv1_max_res=32,
    bottleneck_max_res=16,
    bottleneck=4,
    img_channels=(4, 8, 8, 8),
    img_hidden=32,
)


def _randomise_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial running statistics, so eval-mode BatchNorm is not the identity."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.3)


def _mixed_model(seed: int = 0) -> OctreeAutoencoder:
    torch.manual_seed(seed)
    ae = OctreeAutoencoder(MIXED)
    _randomise_bn(ae, seed)
    return ae.eval()


def test_mixed_config_has_a_64_head():
    assert head_resolutions(MIXED) == (4, 8, 16, 32, 64)
    assert head_resolutions(ModelConfig()) == (4, 8, 16, 32)


@pytest.mark.parametrize("mode", ["pred", "gt", "union", "none"])
def test_sparse_matches_dense_logits_on_live_cells(mode):
    ae = _mixed_model()
    dec = ae.decoder
    torch.manual_seed(1)
    z = torch.randn(3, MIXED.latent_dim)
    x64 = torch.zeros(3, 1, 64, 64, 64)
    x64[:, :, 16:48, 20:44, 0:40] = 1
    x64[1, :, 5:12, 5:60, 0:9] = 1
    tg = octree_targets(x64, head_resolutions(MIXED))
    thr = {4: -0.2, 8: 0.1, 16: 0.0, 32: -0.1, 64: 0.0}
    with torch.no_grad():
        d = dec(z, targets=tg, mode=mode, thresholds=thr)
        s = SparseOctreeDecoder(dec)(z, targets=tg, mode=mode, thresholds=thr)
    assert set(s) == set(d) == {4, 8, 16, 32, 64}
    for r in d:
        live = d[r] > PRUNED_LOGIT
        sd = s[r].to_dense(3)
        assert int(live.sum()) == len(s[r].logits), r  # the same cells are live
        torch.testing.assert_close(sd, d[r], atol=1e-4, rtol=1e-4)
    if mode != "none":
        assert len(s[64].logits) < 3 * 64**3  # pruning really dropped cells


def test_zero_absent_mode_differs_only_through_the_bottleneck():
    """``absent="zero"`` is the sparse-tensor semantics: without a bottleneck branch it is the
    dense path too; with one, pruned neighbours change the result (why "dense" exists)."""
    torch.manual_seed(2)
    plain = OctreeAutoencoder(
        ModelConfig(latent_dim=16, dec_channels=(16, 16, 8, 8, 4), conv3_max_res=8)
    )
    _randomise_bn(plain)
    plain.eval()
    z = torch.randn(2, 16)
    with torch.no_grad():
        d = plain.decoder(z)
        s = SparseOctreeDecoder(plain.decoder, absent="zero")(z)
        for r in d:
            torch.testing.assert_close(s[r].to_dense(2), d[r], atol=1e-4, rtol=1e-4)
        mixed = _mixed_model(3).decoder
        x64 = torch.zeros(2, 1, 64, 64, 64)
        x64[:, :, 8:40, 8:40, 0:30] = 1  # prunes most of the grid from 4³ on
        tg = octree_targets(x64, head_resolutions(MIXED))
        dz = SparseOctreeDecoder(mixed, absent="zero")(z, targets=tg, mode="gt")
        dd = SparseOctreeDecoder(mixed, absent="dense")(z, targets=tg, mode="gt")
        dm = mixed(z, targets=tg, mode="gt")
    torch.testing.assert_close(dd[16].to_dense(2), dm[16], atol=1e-4, rtol=1e-4)
    assert torch.equal(dz[16].coords, dd[16].coords)
    assert float((dz[16].logits - dd[16].logits).abs().max()) > 1e-3


def test_sparse_loss_and_gradients_match_dense():
    ae = _mixed_model(4)
    dec = ae.decoder
    x = torch.from_numpy(synthetic_shapes(2, seed=3)).float()[:, None]
    x64 = x.repeat_interleave(2, 2).repeat_interleave(2, 3).repeat_interleave(2, 4)
    tg = octree_targets(x64, head_resolutions(MIXED))
    z = torch.randn(2, MIXED.latent_dim)
    ld, pd = octree_loss(dec(z, targets=tg, mode="union"), tg)
    gd = torch.autograd.grad(ld, list(dec.parameters()), allow_unused=True)
    ls, ps = sparse_octree_loss(SparseOctreeDecoder(dec)(z, targets=tg, mode="union"), tg)
    gs = torch.autograd.grad(ls, list(dec.parameters()), allow_unused=True)
    assert float(ls.detach()) == pytest.approx(float(ld.detach()), rel=1e-5)
    assert ps == pytest.approx(pd, rel=1e-4)
    for a, b in zip(gd, gs, strict=True):
        if a is None:
            assert b is None or float(b.abs().max()) == 0
            continue
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-3)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 6),
    st.lists(st.tuples(st.integers(0, 1), *[st.integers(0, 5)] * 3), min_size=1, max_size=60),
)
def test_neighbour_index_matches_brute_force(res, cells):
    cells = sorted({(b, x % res, y % res, z % res) for b, x, y, z in cells})
    coords = torch.tensor(cells, dtype=torch.long)
    keys = ((coords[:, 0] * res + coords[:, 1]) * res + coords[:, 2]) * res + coords[:, 3]
    order = torch.argsort(keys)
    coords = coords[order]
    nbr = neighbour_index(coords, res)
    rows = {tuple(c): i for i, c in enumerate(coords.tolist())}
    n = len(coords)
    k = 0
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dz in (-1, 0, 1):
                for i, (b, x, y, z) in enumerate(coords.tolist()):
                    q = (x + dx, y + dy, z + dz)
                    if not all(0 <= v < res for v in q):
                        want = n + 1
                    else:
                        want = rows.get((b, *q), n)
                    assert int(nbr[k, i]) == want
                k += 1


def test_shipped_weights_give_the_same_voxels_sparse_and_dense():
    from image2lego.core.weights import WeightsError, load_weights

    try:
        w = load_weights(parts=("autoencoder",))
    except WeightsError as e:
        pytest.skip(f"no shipped weights: {e}")
    ae = w.autoencoder
    x = torch.from_numpy(synthetic_shapes(3, seed=5)).float()[:, None]
    with torch.no_grad():
        z = ae.encoder(x)
        d = ae.decoder(z, thresholds=w.thresholds)
    grids = decode_grids(ae.decoder, z, (8, 16, 32), w.thresholds)
    for i in range(3):
        for r in (8, 16, 32):
            want = ((d[r][i, 0] > w.thresholds[r]) & (d[r][i, 0] > PRUNED_LOGIT)).numpy()
            np.testing.assert_array_equal(grids[i][r], want)
        assert grids[i][32].sum() > 50  # a real shape, not an empty grid


def test_predictor_offers_64_only_with_weights_that_have_it(tmp_path):
    from image2lego.core.inference import Predictor
    from image2lego.core.weights import load_weights, save_weights
    from image2lego.training.level64 import grown_autoencoder

    from .tiny_model import TINY

    torch.manual_seed(0)
    base = OctreeAutoencoder(TINY).eval()
    save_weights(tmp_path / "w32", base, None, {r: 0.0 for r in (4, 8, 16, 32)})
    p32 = Predictor(load_weights(tmp_path / "w32", parts=("autoencoder",)))
    grid = synthetic_shapes(1, seed=0)[0]
    assert p32.resolutions == (4, 8, 16, 32)
    with pytest.raises(ValueError, match="64³ needs weights with a 64³ level"):
        p32.reconstruct(grid, (64,))
    grown = grown_autoencoder(base, channels=4).eval()
    save_weights(tmp_path / "w64", grown, None, {r: 0.0 for r in (4, 8, 16, 32, 64)})
    p64 = Predictor(load_weights(tmp_path / "w64", parts=("autoencoder",)))
    assert p64.resolutions == (4, 8, 16, 32, 64)
    a, b = p32.reconstruct(grid, (16, 32)), p64.reconstruct(grid, (16, 32, 64))
    for r in (16, 32):  # the lower levels are the base model's, exactly
        np.testing.assert_array_equal(a[r], b[r])
    assert b[64].shape == (64, 64, 64) and b[64].dtype == bool
    # a 64³ cell can only be occupied where its 32³ parent is
    parent = b[32].repeat(2, 0).repeat(2, 1).repeat(2, 2)
    assert not (b[64] & ~parent).any()
    # the numpy runtime (the CLI's and Blender's default) decodes the 64³ level too: same voxels
    from image2lego.core.npnet import NumpyPredictor, load_net

    n64 = NumpyPredictor(load_net(tmp_path / "w64", parts=("autoencoder",)))
    n32 = NumpyPredictor(load_net(tmp_path / "w32", parts=("autoencoder",)))
    assert n64.resolutions == (4, 8, 16, 32, 64) and n32.resolutions == (4, 8, 16, 32)
    np.testing.assert_array_equal(n64.reconstruct(grid, (64,))[64], b[64])
    with pytest.raises(ValueError, match="64³ needs weights with a 64³ level"):
        n32.reconstruct(grid, (64,))

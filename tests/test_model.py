"""TL-Octree network: shapes, octree targets, pruning semantics, loss at every resolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from image2lego.core.model import (
    OUTPUT_RESOLUTIONS,
    PRUNED_LOGIT,
    ImageEncoder,
    ModelConfig,
    OctreeAutoencoder,
    iou,
    octree_loss,
    octree_targets,
)

from .tiny_model import TINY


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _boxes(n: int = 3) -> torch.Tensor:
    g = torch.zeros(n, 1, 32, 32, 32)
    for i in range(n):
        g[i, 0, 4 + i : 20 + i, 6:18, 0 : 10 + 4 * i] = 1
    return g


def test_shapes_paper_config():
    m = OctreeAutoencoder()  # default channels, as shipped
    m.eval()
    x = _boxes(2)
    with torch.no_grad():
        z = m.encoder(x)
        out = m.decoder(z)
    assert z.shape == (2, 256)
    assert sorted(out) == list(OUTPUT_RESOLUTIONS)
    for r, lg in out.items():
        assert lg.shape == (2, 1, r, r, r)
    img = ImageEncoder()
    img.eval()
    with torch.no_grad():
        assert img(torch.rand(3, 1, 128, 128)).shape == (3, 256)
        assert img(torch.zeros(2, 128, 128, dtype=torch.uint8)).shape == (2, 256)


def test_image_encoder_has_paper_channels():
    convs = [m for m in ImageEncoder().features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 256, 384, 256]
    pools = [m for m in ImageEncoder().features if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 4


def test_decoder_uses_generative_transposed_convs():
    m = OctreeAutoencoder()
    ups = [b.up for b in m.decoder.blocks]
    assert all(isinstance(u, torch.nn.ConvTranspose3d) for u in ups)
    assert all(u.kernel_size == (2, 2, 2) and u.stride == (2, 2, 2) for u in ups)
    assert m.cfg.resolutions == (2, 4, 8, 16, 32)


@settings(max_examples=25, deadline=None)
@given(arrays(np.bool_, (32, 32, 32), elements=st.booleans(), fill=st.just(False)))
def test_octree_targets_are_max_pools(grid):
    t = octree_targets(torch.from_numpy(grid)[None])
    for r in OUTPUT_RESOLUTIONS:
        k = 32 // r
        expect = grid.reshape(r, k, r, k, r, k).any(axis=(1, 3, 5))
        assert np.array_equal(t[r][0, 0].numpy().astype(bool), expect)
    # nesting: an occupied child always has an occupied parent
    for lo, hi in zip(OUTPUT_RESOLUTIONS, OUTPUT_RESOLUTIONS[1:], strict=False):
        up = t[lo].repeat_interleave(2, 2).repeat_interleave(2, 3).repeat_interleave(2, 4)
        assert bool((t[hi] <= up).all())


def test_octree_targets_reject_bad_size():
    with pytest.raises(ValueError, match="does not divide"):
        octree_targets(torch.zeros(1, 1, 30, 30, 30))


def _capture_block_features(dec):
    feats = []
    hooks = [b.register_forward_hook(lambda m, i, o: feats.append(o)) for b in dec.blocks]
    return feats, hooks


TINY_CONTEXT = ModelConfig.from_dict(
    TINY.to_dict() | {"conv3_max_res": 8, "bottleneck_max_res": 16, "bottleneck": 4}
)


@pytest.mark.parametrize("cfg", [TINY, TINY_CONTEXT], ids=["tiny", "3x3-context"])
def test_pruned_cells_have_zero_features_and_empty_children(cfg):
    # also with 3³ convolutions at 8³/16³, which spread features into pruned neighbours
    m = OctreeAutoencoder(cfg)
    m.eval()
    x = _boxes(2)
    with torch.no_grad():
        z = m.encoder(x)
        free = m.decoder(z, mode="none")
        # prune about half of the 4³ cells and a share of 8³ ones
        thr = {4: float(free[4].median()), 8: float(free[8].median())}
        feats, hooks = _capture_block_features(m.decoder)
        out = m.decoder(z, mode="pred", thresholds=thr)
        for h in hooks:
            h.remove()
    kept4 = out[4] > thr[4]
    assert 0 < int(kept4.sum()) < kept4.numel()  # the test really prunes something
    for lo, hi in ((4, 8), (8, 16), (16, 32)):
        parent_alive = out[lo] > thr.get(lo, 0.0)
        up = parent_alive.repeat_interleave(2, 2).repeat_interleave(2, 3).repeat_interleave(2, 4)
        pruned = ~up
        assert int(pruned.sum()) > 0
        # children of pruned cells are certainly empty
        assert bool((out[hi][pruned] == PRUNED_LOGIT).all())
        # and carry exactly zero features (blocks are at 2,4,8,16,32 → index log2(hi)-1)
        f = feats[int(np.log2(hi)) - 1]
        assert bool((f * pruned.float()).abs().max() == 0)
        # alive cells keep real (not forced) logits
        assert bool((out[hi][up] != PRUNED_LOGIT).any())


def test_teacher_forcing_prunes_by_ground_truth():
    m = OctreeAutoencoder(TINY)
    x = _boxes(2)
    t = octree_targets(x)
    out = m(x, mode="gt", targets=t)
    for lo, hi in ((4, 8), (8, 16), (16, 32)):
        up = t[lo].repeat_interleave(2, 2).repeat_interleave(2, 3).repeat_interleave(2, 4) > 0
        assert bool((out[hi][~up] == PRUNED_LOGIT).all())
    with pytest.raises(ValueError, match="needs targets"):
        m(x, mode="gt")
    with pytest.raises(ValueError, match="unknown pruning mode"):
        m(x, mode="sparse")


def test_loss_covers_every_resolution():
    m = OctreeAutoencoder(TINY)
    x = _boxes(2)
    t = octree_targets(x)
    out = m(x, mode="union", targets=t)
    loss, parts = octree_loss(out, t)
    assert sorted(parts) == list(OUTPUT_RESOLUTIONS)
    assert abs(float(loss.detach()) - sum(parts.values())) < 1e-4
    loss.backward()
    for r in OUTPUT_RESOLUTIONS:
        g = m.decoder.heads[str(r)].weight.grad
        assert g is not None and float(g.abs().sum()) > 0, r
    # perfect logits give (almost) zero loss; wrong ones a large one
    perfect = {r: (t[r] * 2 - 1) * 30 for r in t}
    assert float(octree_loss(perfect, t)[0]) < 1e-6
    assert float(octree_loss({r: -v for r, v in perfect.items()}, t)[0]) > 10


def test_iou():
    a = torch.zeros(2, 4, 4, 4, dtype=torch.bool)
    b = torch.zeros(2, 4, 4, 4, dtype=torch.bool)
    a[0, :2] = True
    b[0, :1] = True
    assert iou(a, b).tolist() == [0.5, 1.0]  # second sample: empty vs empty


def test_config_roundtrip():
    cfg = ModelConfig.from_dict(TINY.to_dict() | {"unknown": 1})
    assert cfg == TINY
    assert ModelConfig.from_dict(TINY_CONTEXT.to_dict()) == TINY_CONTEXT


def test_context_convolutions_where_configured():
    dec = OctreeAutoencoder(TINY_CONTEXT).decoder
    kinds = {}
    for res, block in zip(TINY_CONTEXT.resolutions, dec.blocks, strict=True):
        convs = [m for m in block.modules() if type(m) is torch.nn.Conv3d]
        kinds[res] = sorted(c.kernel_size[0] for c in convs)
    assert kinds == {2: [3], 4: [3], 8: [3], 16: [1, 1, 3], 32: []}
    # the default (shipped v1) configuration has no bottleneck
    assert ModelConfig().bottleneck_max_res == 0

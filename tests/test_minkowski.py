"""MinkowskiEngine backend (training/minkowski.py) against the plain-torch sparse decoder.

Skips without MinkowskiEngine (build it with tools/build_minkowski.sh; the runtime never
needs it). Tolerance: logits within 1e-4 absolute on every live cell, identical live cells,
identical voxels except for logits within 1e-4 of a decision threshold.
"""

from __future__ import annotations

import pytest
import torch

ME = pytest.importorskip("MinkowskiEngine", reason="MinkowskiEngine is not installed")

from image2lego.core.model import (  # noqa: E402
    ModelConfig,
    OctreeDecoder,
    head_resolutions,
    octree_targets,
)
from image2lego.core.sparse import SparseOctreeDecoder, sparse_octree_loss  # noqa: E402
from image2lego.training import minkowski as mk  # noqa: E402
from tests.test_sparse import MIXED, _randomise_bn  # noqa: E402

TOL = 1e-4


def _pair(seed: int = 0, cfg: ModelConfig = MIXED):
    torch.manual_seed(seed)
    dense = OctreeDecoder(cfg)
    _randomise_bn(dense, seed)
    dense.eval()
    me = mk.MEOctreeDecoder(cfg)
    me.load_state_dict(mk.from_dense_state(dense.state_dict(), me.state_dict()))
    return dense, me.eval()


def _targets(b: int = 2):
    x64 = torch.zeros(b, 1, 64, 64, 64)
    x64[:, :, 10:50, 14:40, 0:36] = 1
    x64[-1, :, 0:6, 0:64, 0:10] = 1  # touches the grid's border
    return octree_targets(x64, head_resolutions(MIXED))


def _clear_threshold(logits: torch.Tensor) -> float:
    """A threshold between the 30 % and 70 % quantiles in the widest gap between logits, so
    1e-7 rounding differences cannot flip a pruning decision."""
    v = logits.sort().values
    lo, hi = int(0.3 * len(v)), max(int(0.7 * len(v)), int(0.3 * len(v)) + 1)
    gaps = v[lo + 1 : hi + 1] - v[lo:hi]
    i = lo + int(gaps.argmax())
    return float(v[i] + v[i + 1]) / 2


@pytest.mark.parametrize("mode", ["gt", "pred", "union"])
def test_me_matches_plain_torch_sparse(mode):
    dense, me = _pair()
    z = torch.randn(2, MIXED.latent_dim, generator=torch.Generator().manual_seed(1))
    tg = _targets()
    sp = SparseOctreeDecoder(dense, absent="zero")
    thr: dict[int, float] = {}
    with torch.no_grad():
        for r in head_resolutions(MIXED):  # thresholds that keep about half of each level
            lv = sp(z, targets=tg, mode=mode, thresholds=thr, max_res=r)[r]
            thr[r] = _clear_threshold(lv.logits)
        a = me(z, targets=tg, mode=mode, thresholds=thr)
        b = sp(z, targets=tg, mode=mode, thresholds=thr)
    assert set(a) == set(b)
    for r in b:
        assert torch.equal(a[r].coords, b[r].coords), r
        assert float((a[r].logits - b[r].logits).abs().max()) < TOL, r
        clear = (b[r].logits - thr[r]).abs() > TOL  # same voxels away from the threshold
        assert torch.equal((a[r].logits > thr[r])[clear], (b[r].logits > thr[r])[clear]), r
    assert len(b[64].logits) > 500  # a real, pruned 64³ level was compared
    assert len(b[64].logits) < 0.9 * 2 * 64**3


def test_converter_round_trip_and_training_step_parity():
    """ME-trained weights load into the dense module unchanged (round trip), and one training
    step's gradients agree between ME and the plain-torch sparse path."""
    dense, me = _pair(2)
    back = mk.to_dense_state(me.state_dict(), dense.state_dict())
    for k, v in dense.state_dict().items():
        assert torch.equal(back[k], v), k
    dense.train()
    me.train()
    tg = _targets()
    z = torch.randn(2, MIXED.latent_dim, generator=torch.Generator().manual_seed(3))
    la, _ = sparse_octree_loss(me(z, targets=tg, mode="gt"), tg)
    lb, _ = sparse_octree_loss(
        SparseOctreeDecoder(dense, absent="zero")(z, targets=tg, mode="gt"), tg
    )
    assert float(la.detach()) == pytest.approx(float(lb.detach()), rel=1e-4)
    la.backward()
    lb.backward()
    me_grads = {k: p.grad for k, p in me.named_parameters()}
    conv = mk.to_dense_state(
        {k: (me_grads.get(k) if k in me_grads else v) for k, v in me.state_dict().items()},
        dense.state_dict(),
    )
    for k, p in dense.named_parameters():
        torch.testing.assert_close(conv[k], p.grad, atol=1e-4, rtol=1e-3)


def test_export_config_records_sparse_semantics():
    cfg = mk.export_config(MIXED)
    assert cfg.absent_neighbours == "zero"
    dense = OctreeDecoder(cfg)
    assert SparseOctreeDecoder(dense).absent == "zero"


@pytest.mark.slow
def test_torchrun_trains_with_the_me_backend_and_the_runtime_reads_the_result(tmp_path):
    """`train ae --backend minkowski` under torchrun (2 ranks, gloo): the ranks stay in step,
    the checkpoint is the dense layout with ME's semantics recorded, and the plain-torch
    sparse runtime decodes it to the ME decoder's own voxels."""
    import json

    from image2lego.core.model import OctreeAutoencoder
    from tests._torchrun import moved_from_init, train_two_ranks

    final = train_two_ranks(tmp_path, "--backend", "minkowski")
    cfg = ModelConfig.from_dict(json.loads(final["config"]))
    assert cfg.absent_neighbours == "zero"
    ae = OctreeAutoencoder(cfg)
    ae.load_state_dict(final["model"])  # the dense layout: the runtime loads it unchanged
    assert moved_from_init(OctreeAutoencoder, cfg, final["model"])
    me = mk.MEOctreeDecoder(cfg)
    mk.load_dense_decoder(me, ae.decoder)
    ae.eval()
    me.eval()
    z = torch.randn(3, cfg.latent_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        a = me(z, mode="pred")
        b = SparseOctreeDecoder(ae.decoder)(z, mode="pred")  # absent from the config: zero
    assert set(a) == set(b)
    for r in b:
        assert torch.equal(a[r].coords, b[r].coords), r
        assert float((a[r].logits - b[r].logits).abs().max()) < TOL, r

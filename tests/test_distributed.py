"""Two-process training with PyTorch's own engine (torchrun, gloo on CPU) stays in step."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from .tiny_model import TINY


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
@pytest.mark.slow
def test_torchrun_two_ranks_end_with_identical_weights(tmp_path):
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "image2lego.training.train", "ae", "--synthetic", "24", "--epochs", "1",
        "--batch", "4", "--out", str(tmp_path), "--config", json.dumps(TINY.to_dict()),
        "--save-rank-weights", "--quiet", "--threads", "1", "--recal-samples", "16",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    r0 = torch.load(tmp_path / "ae_rank0.pt", weights_only=True)["model"]
    r1 = torch.load(tmp_path / "ae_rank1.pt", weights_only=True)["model"]
    assert r0.keys() == r1.keys()
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"ranks differ in {k}"
    final = torch.load(tmp_path / "ae_final.pt", weights_only=True)
    # 24 shapes / (2 ranks x batch 4) = 3 steps, each rank saw its own half of the data
    assert final["step"] == 3 and final["epoch"] == 1
    # the weights moved away from the initialisation
    from image2lego.core.model import OctreeAutoencoder

    torch.manual_seed(1234)
    init = OctreeAutoencoder(TINY).state_dict()
    assert any(not torch.equal(init[k], r0[k]) for k in r0 if r0[k].is_floating_point())

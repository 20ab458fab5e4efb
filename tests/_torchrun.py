"""Two-rank torchrun (gloo on CPU) of the autoencoder stage on synthetic shapes, shared by the
training-backend tests: runs it, checks the ranks ended bit-identical, returns the checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from .tiny_model import TINY


def train_two_ranks(out: Path, *extra: str) -> dict:
    """``train ae`` on 24 synthetic shapes, 1 epoch, batch 4, 2 ranks; ``ae_final.pt``."""
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "image2lego.training.train", "ae", *extra, "--synthetic", "24", "--epochs", "1",
        "--batch", "4", "--out", str(out), "--config", json.dumps(TINY.to_dict()),
        "--save-rank-weights", "--quiet", "--threads", "1", "--recal-samples", "16",
    ]  # fmt: skip
    # the children see this process's import path (e.g. a MinkowskiEngine site folder)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    r0 = torch.load(out / "ae_rank0.pt", weights_only=True)["model"]
    r1 = torch.load(out / "ae_rank1.pt", weights_only=True)["model"]
    assert r0.keys() == r1.keys()
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"ranks differ in {k}"
    final = torch.load(out / "ae_final.pt", weights_only=True)
    # 24 shapes / (2 ranks x batch 4) = 3 steps, each rank saw its own half of the data
    assert final["step"] == 3 and final["epoch"] == 1
    return final


def moved_from_init(model_cls, cfg, state: dict) -> bool:
    """Whether some floating-point weight differs from the seeded initialisation."""
    torch.manual_seed(1234)
    init = model_cls(cfg).state_dict()
    return any(not torch.equal(init[k], v) for k, v in state.items() if v.is_floating_point())

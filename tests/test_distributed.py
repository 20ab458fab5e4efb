"""Two-process training with PyTorch's own engine (torchrun, gloo on CPU) stays in step."""

from __future__ import annotations

import pytest
import torch

from ._torchrun import moved_from_init, train_two_ranks
from .tiny_model import TINY


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
@pytest.mark.slow
def test_torchrun_two_ranks_end_with_identical_weights(tmp_path):
    from image2lego.core.model import OctreeAutoencoder

    final = train_two_ranks(tmp_path)
    # the weights moved away from the initialisation
    assert moved_from_init(OctreeAutoencoder, TINY, final["model"])

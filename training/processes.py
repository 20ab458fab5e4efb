"""Process setup for training: threads, seeds, torch.distributed (gloo / nccl)."""

from __future__ import annotations

import os
import random

import torch
import torch.distributed as dist
from torch import nn

SEED = 1234


def setup_threads(n: int | None = None) -> None:
    """Use the cores we have (2 here) without oversubscribing when several ranks share them."""
    if n is None:
        world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
        n = max(1, (os.cpu_count() or 1) // max(1, world))
    torch.set_num_threads(n)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


class Dist:
    """Rank/world info; initialises ``torch.distributed`` when launched by torchrun."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world > 1
        if torch.cuda.is_available():
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
        if self.enabled and not dist.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_reduce_mean(self, x: float) -> float:
        if not self.enabled:
            return x
        t = torch.tensor([x], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item()) / self.world

    def any_flag(self, flag: bool) -> bool:
        """True on every rank when it is true on any (keeps ranks in step when stopping)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1 if flag else 0])
        dist.all_reduce(t)
        return bool(t.item())

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def wrap_ddp(model: nn.Module, d: Dist) -> nn.Module:
    if not d.enabled:
        return model
    ids = [d.local_rank] if d.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model

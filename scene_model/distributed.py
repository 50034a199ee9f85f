"""Values averaged over the processes of a distributed run (the number of boxes a loss is normalised
by, so that every rank divides by the same count)."""

from __future__ import annotations

import torch.distributed as dist
from torch import Tensor


def mean_over_ranks(value: Tensor) -> Tensor:
    """``value`` averaged over the processes of a distributed run; itself in a single process."""
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
        value = value / dist.get_world_size()
    return value

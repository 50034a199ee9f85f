"""Learning-rate schedules stepped every optimiser step; each takes (optimizer, total_steps, ...)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def cosine_with_warmup(optimizer: Optimizer, total_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.01) -> LambdaLR:
    """Linear warm-up over ``warmup_steps``, then cosine decay to ``min_lr_ratio`` of the base rate."""
    warmup_steps = min(warmup_steps, max(0, total_steps - 1))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def step_decay(optimizer: Optimizer, total_steps: int, milestones: Sequence[float] = (0.7,), gamma: float = 0.1) -> LambdaLR:
    """Multiply the rate by ``gamma`` at each milestone, given as a fraction of the total steps."""
    boundaries = [int(m * total_steps) for m in milestones]
    return LambdaLR(optimizer, lambda step: gamma ** sum(step >= b for b in boundaries))

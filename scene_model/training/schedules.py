"""Learning-rate schedules stepped every optimiser step: torch's schedulers, built from the config's
keys; each takes (optimizer, total_steps, ...), ``total_steps`` filled in by the lit module."""

from __future__ import annotations

from collections.abc import Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, MultiStepLR, SequentialLR


def cosine_with_warmup(
    optimizer: Optimizer, total_steps: int, warmup_steps: int, min_lr_ratio: float
) -> LRScheduler:
    """Linear warm-up over ``warmup_steps`` (from 1/warmup_steps of the rate; at least one step at the
    full rate), then cosine decay to ``min_lr_ratio`` of the base rate (the largest group's; a group
    below that floor stays where it is). Always the same two schedulers, so that a resumed run with
    another number of steps loads the state it saved."""
    warmup_steps = max(1, min(warmup_steps, total_steps - 1))
    rates = [group["lr"] for group in optimizer.param_groups]
    floor = min(min_lr_ratio * max(rates), min(rates))
    cosine = CosineAnnealingLR(optimizer, T_max=max(1, total_steps - warmup_steps), eta_min=floor)
    warmup = LinearLR(optimizer, start_factor=1 / warmup_steps, end_factor=1.0, total_iters=max(1, warmup_steps - 1))
    return SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])


def step_decay(optimizer: Optimizer, total_steps: int, milestones: Sequence[float], gamma: float) -> MultiStepLR:
    """Multiply the rate by ``gamma`` at each milestone, given as a fraction of the total steps."""
    return MultiStepLR(optimizer, milestones=[int(m * total_steps) for m in milestones], gamma=gamma)

"""Learning-rate schedules: torch's schedulers reproduce the warm-up + cosine and step-decay curves."""

from __future__ import annotations

import math

import pytest
import torch

from scene_model.training.schedules import cosine_with_warmup, step_decay


def rates(make, steps, lrs=(1.0,)):
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in lrs]
    optimizer = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs, strict=True)])
    scheduler = make(optimizer)
    seen = []
    for _ in range(steps):
        seen.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return seen


def expected_cosine(step, total, warmup, ratio):
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / (total - warmup)
    return ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * progress))


@pytest.mark.parametrize("warmup", [0, 1, 5])
def test_warmup_then_cosine_to_the_floor(warmup):
    total, ratio = 40, 0.01
    seen = rates(lambda o: cosine_with_warmup(o, total, warmup_steps=warmup, min_lr_ratio=ratio), total)
    for step, (lr,) in enumerate(seen):
        assert lr == pytest.approx(expected_cosine(step, total, max(warmup, 1), ratio), abs=1e-6), step


def test_groups_keep_their_ratio_during_warmup_and_none_rises():
    seen = rates(lambda o: cosine_with_warmup(o, 30, warmup_steps=4, min_lr_ratio=0.01), 30, lrs=(1.0, 0.1))
    assert seen[0] == pytest.approx([0.25, 0.025])
    assert seen[4] == pytest.approx([1.0, 0.1])
    assert all(b[1] <= a[1] + 1e-9 for a, b in zip(seen[4:], seen[5:], strict=False))


def test_step_decay_at_fractions_of_the_run():
    seen = rates(lambda o: step_decay(o, 10, milestones=(0.5, 0.8), gamma=0.1), 10)
    assert [lr for (lr,) in seen] == pytest.approx([1.0] * 5 + [0.1] * 3 + [0.01] * 2)

"""Speed switches of the Lightning module (``module.channels_last``, ``module.compile``).

Mixed precision is Lightning's (``trainer.precision=bf16-mixed``); the loss runs in float32 whatever
the precision (HeadAdapter.losses_and_assignment turns autocast off).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def channels_last_frames(frames: Tensor) -> Tensor:
    """frames [B,T,3,H,W] laid out so that ``frames.flatten(0, 1)`` (what the backbone sees) is a
    channels_last [B*T,3,H,W] view: the same values, channel the fastest-moving dimension."""
    return frames.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)


def apply_fast_paths(model: nn.Module, channels_last: bool, compile: bool) -> nn.Module:
    """Convert the model's 4-d weights to channels_last and/or compile its forward in place.

    ``nn.Module.compile`` keeps the module and its state-dict keys (checkpoints stay loadable with or
    without the switch), unlike wrapping it in ``torch.compile``.
    """
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile:
        model.compile()
    return model

"""Skip optimisation steps whose loss or gradients are not finite, and stop after too many in a row."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import Tensor
from torch.optim import Optimizer

from scene_model.errors import DivergenceError

log = logging.getLogger(__name__)


def describe_batch(sequence_ids: list[str] | None, frame_indices: Tensor | None) -> str:
    """'seqA frames 3-9, seqB frames 1-7' from a SceneBatch's sequence_ids and frame_indices [B,T]."""
    if not sequence_ids:
        return "a batch without sequence names"
    parts = []
    for b, name in enumerate(sequence_ids):
        frames = frame_indices[b][frame_indices[b] > 0] if frame_indices is not None else None
        if frames is None or frames.numel() == 0:
            parts.append(str(name))
        else:
            parts.append(f"{name} frames {int(frames.min())}-{int(frames.max())}")
    return ", ".join(parts)


class SkipNonFiniteSteps(L.Callback):
    """A step whose loss (any micro-batch of it) or gradient norm is NaN or infinite changes nothing.

    Its gradients are dropped before the optimiser sees them, so parameters and optimiser state stay
    as they were, and the module's buffers (batch-norm statistics, which the bad forward pass may
    have poisoned) are put back to their values after the last good step. Each skipped step is
    counted in ``train/skipped_steps`` and named in the log with its sequences and frames; after
    ``max_bad_steps`` skipped steps in a row the run stops with a :class:`DivergenceError`.

    With a float16 GradScaler, overflowing gradients are the scaler's business (it skips and lowers
    its scale); only a non-finite loss counts then.

    With a fused optimiser (``fused=True``: AdamW, Adam, SGD) the decision never leaves the device:
    the optimiser gets it as its ``found_inf`` flag (its step then leaves parameters, moments and step
    count alone, as under a GradScaler) and the buffers are put back with ``torch.where``. The flags
    are read every ``check_every_n_steps`` optimiser steps (None: ``trainer.log_every_n_steps``,
    when Lightning reads the logged values anyway) and at the end of each epoch; the warnings, the
    counters and the stop happen then, so a run of bad steps stops at most that many steps late
    (every one of them skipped). Other optimisers cost one host sync per optimiser step. Under DDP
    the flag is all-reduced so that every rank skips the same steps.
    """

    def __init__(self, max_bad_steps: int, check_every_n_steps: int | None) -> None:
        if max_bad_steps < 1:
            raise ValueError(f"max_bad_steps must be >= 1, got {max_bad_steps}")
        self.max_bad_steps = max_bad_steps
        self.check_every_n_steps = check_every_n_steps
        self._unread: list[tuple[Tensor, list]] = []  # (bad flag on the device, the step's batches), fused only
        self.consecutive = 0
        self.total = 0
        self._loss_finite: Tensor | None = None
        self._pending: list[tuple[Any, Any]] = []  # (sequence_ids, frame_indices) of the step's batches
        self._buffers: list[Tensor] = []

    # --- what a step saw ---------------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._keep_buffers(pl_module)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        self._pending.append((getattr(batch, "sequence_ids", None), getattr(batch, "frame_indices", None)))

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Tensor) -> None:
        finite = torch.isfinite(loss.detach()).all()
        self._loss_finite = finite if self._loss_finite is None else self._loss_finite & finite

    # --- the decision ------------------------------------------------------------------------------
    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        checks = [] if self._loss_finite is None else [self._loss_finite]
        if grads and not _scaler_in_use(trainer):
            checks.append(torch.isfinite(torch.nn.utils.get_total_norm(grads)))
        batches, self._pending, self._loss_finite = self._pending, [], None
        if checks and _skips_on_device(optimizer) and not _scaler_in_use(trainer):
            self._decide_on_device(trainer, pl_module, optimizer, torch.stack(checks).all(), batches)
            return
        good = bool(torch.stack(checks).all()) if checks else True  # the one host sync
        good = trainer.strategy.reduce_boolean_decision(good, all=True)
        self._count(trainer, pl_module, optimizer, good, batches)
        pl_module.log("train/skipped_steps", float(self.total), on_step=True, on_epoch=False, batch_size=1)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._read(trainer, pl_module, None)

    def _count(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer | None, good: bool, batches: list) -> None:
        if good:
            self.consecutive = 0
            if optimizer is not None:
                self._keep_buffers(pl_module)
        else:
            self._skip(trainer, pl_module, optimizer, batches)

    @torch.no_grad()
    def _decide_on_device(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer, good: Tensor, batches: list) -> None:
        bad = trainer.strategy.reduce((~good).float(), reduce_op="max")  # every rank skips the same steps
        optimizer.found_inf = bad  # the fused step does nothing where this is 1
        buffers = list(pl_module.buffers())
        if [b.shape for b in buffers] == [b.shape for b in self._buffers]:
            for buffer, kept in zip(buffers, self._buffers, strict=True):
                buffer.copy_(torch.where(bad > 0, kept, buffer))
        self._keep_buffers(pl_module)
        self._unread.append((bad, batches))
        every = self.check_every_n_steps or trainer.log_every_n_steps or 1
        if (trainer.global_step + 1) % every == 0:
            self._read(trainer, pl_module, optimizer)
        pl_module.log("train/skipped_steps", float(self.total), on_step=True, on_epoch=False, batch_size=1)

    def _read(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer | None) -> None:
        """Count (and warn about, and stop on) the steps decided on the device since the last read."""
        if not self._unread:
            return
        unread, self._unread = self._unread, []
        flags = torch.stack([bad for bad, _ in unread]).cpu().tolist()  # one host copy for them all
        for bad, (_, batches) in zip(flags, unread, strict=True):
            self._count(trainer, pl_module, None, not bad, batches)

    @torch.no_grad()
    def _keep_buffers(self, pl_module: L.LightningModule) -> None:
        buffers = list(pl_module.buffers())
        if [b.shape for b in buffers] != [b.shape for b in self._buffers]:
            self._buffers = [b.detach().clone() for b in buffers]
            return
        for kept, buffer in zip(self._buffers, buffers, strict=True):
            kept.copy_(buffer)

    @torch.no_grad()
    def _restore_buffers(self, pl_module: L.LightningModule) -> None:
        buffers = list(pl_module.buffers())
        if [b.shape for b in buffers] == [b.shape for b in self._buffers]:
            for buffer, kept in zip(buffers, self._buffers, strict=True):
                buffer.copy_(kept)

    def _skip(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer | None, batches: list) -> None:
        """Drop the step's gradients and put the buffers back (``optimizer`` None: the device did that), count, warn."""
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)  # the optimiser steps over parameters without gradients
            self._restore_buffers(pl_module)
        self.consecutive += 1
        self.total += 1
        where = "; ".join(describe_batch(*b) for b in batches)
        log.warning(
            f"step {trainer.global_step}: non-finite loss or gradient, step skipped "
            f"({self.consecutive} in a row, {self.total} in all); batch: {where}"
        )
        if self.consecutive >= self.max_bad_steps:
            raise DivergenceError(
                f"training stopped at step {trainer.global_step}: {self.consecutive} optimisation steps in a row had a "
                f"non-finite loss or gradient (training.max_bad_steps={self.max_bad_steps}); last batch: {where}. "
                "Lower optimizer.lr, keep trainer.gradient_clip_val on, check these sequences' gt.txt and frames, "
                "then resume from checkpoints/last.ckpt (ckpt_path=last)"
            )

    # --- kept in checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, int]:
        return {"consecutive": self.consecutive, "total": self.total}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.consecutive = int(state_dict.get("consecutive", 0))
        self.total = int(state_dict.get("total", 0))


def _skips_on_device(optimizer: Optimizer) -> bool:
    """The optimiser's step honours a ``found_inf`` flag (torch's fused Adam, AdamW, SGD)."""
    return bool(optimizer.defaults.get("fused")) and getattr(optimizer, "_step_supports_amp_scaling", False)


def _scaler_in_use(trainer: L.Trainer) -> bool:
    precision = trainer.precision_plugin
    return isinstance(precision, MixedPrecision) and precision.scaler is not None


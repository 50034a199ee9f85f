"""Callbacks that tests add to a real ``python train.py`` run with ``+callbacks.<name>._target_=tests.probes...``."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import lightning as L

from scene_model.errors import DataFormatError


class SigkillAtStep(L.Callback):
    """Kill the process with SIGKILL, unannounced, when training reaches ``step`` optimiser steps (only
    on global rank ``rank`` when given; the time of the kill written to ``stamp`` when given)."""

    def __init__(self, step: int, rank: int | None = None, stamp: str | None = None) -> None:
        self.step, self.rank, self.stamp = step, rank, stamp

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step >= self.step and self.rank in (None, trainer.global_rank):
            if self.stamp:
                Path(self.stamp).write_text(f"{time.time()} {os.getpid()}")
            os.kill(os.getpid(), signal.SIGKILL)


class RecordTrainingState(L.Callback):
    """Write, as JSON, the training state found when fitting starts (after any checkpoint was restored)
    and the global step of every batch that is trained."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.record: dict = {}

    def on_train_start(self, trainer, pl_module):
        optimizer = trainer.optimizers[0]
        scheduler = trainer.lr_scheduler_configs[0].scheduler if trainer.lr_scheduler_configs else None
        state = optimizer.state_dict()["state"]
        self.record = {
            "global_step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "optimizer_steps": sorted({float(s["step"]) for s in state.values()}),
            "optimizer_exp_avg_sum": sum(float(s["exp_avg"].double().sum()) for s in state.values()),
            "scheduler_last_epoch": scheduler.last_epoch if scheduler is not None else None,
            "lrs": [group["lr"] for group in optimizer.param_groups],
            "trained": [],
        }
        self._write()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.record["trained"].append({"epoch": trainer.current_epoch, "batch_idx": batch_idx,
                                       "global_step": trainer.global_step})
        self._write()

    def _write(self):
        self.path.write_text(json.dumps(self.record))


class SignalAtStep(L.Callback):
    """Send ``signum`` to this process once, when training reaches ``step`` optimiser steps (as ``kill`` would)."""

    def __init__(self, step: int, signum: int = signal.SIGTERM) -> None:
        self.step, self.signum, self.sent = step, int(signum), False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step >= self.step and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signum)


class SignalAtSetup(L.Callback):
    """Send ``signum`` to this process in the trainer's setup, where the data is prepared and before
    Lightning's own signal handlers are installed (as a ``kill`` while a data set is generated would)."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        self.signum = int(signum)

    def setup(self, trainer, pl_module, stage):
        os.kill(os.getpid(), self.signum)


class RaiseAtStep(L.Callback):
    """Raise ``DataFormatError(message)`` when training reaches ``step`` optimiser steps (only on global
    rank ``rank`` when given), as a bad line or frame found mid-run would."""

    def __init__(self, step: int, message: str, rank: int | None = None) -> None:
        self.step, self.message, self.rank = step, message, rank

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step >= self.step and self.rank in (None, trainer.global_rank):
            raise DataFormatError(self.message)


class SleepAtStep(L.Callback):
    """Sleep ``seconds`` when training reaches ``step`` optimiser steps (only on global rank ``rank`` when
    given): a rank that does not reach its next collective, as one waiting in NCCL for a dead peer."""

    def __init__(self, step: int, seconds: float, rank: int | None = None) -> None:
        self.step, self.seconds, self.rank = step, seconds, rank

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step >= self.step and self.rank in (None, trainer.global_rank):
            time.sleep(self.seconds)

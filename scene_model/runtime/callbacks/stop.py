"""``last.ckpt`` when a fit is stopped by SIGTERM or SIGINT (see ``scene_model.runtime.signals``)."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from scene_model.runtime.slurm import submitted_to_slurm

log = logging.getLogger(__name__)


def last_checkpoint_path(trainer: L.Trainer) -> Path | None:
    """``<dirpath>/last.ckpt`` of the first ModelCheckpoint that keeps a last checkpoint."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.save_last and callback.dirpath:
            return Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
    return None


class SaveOnStop(L.Callback):
    """Writes ``last.ckpt`` where Lightning stops a fit on SIGTERM (between two steps, every rank at the
    same step), so that ``ckpt_path=last`` resumes from the last finished step. Under SLURM through
    submitit the requeue owns this (it resumes from the last periodic checkpoint): nothing is written."""

    def __init__(self) -> None:
        self.saved: Path | None = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != TrainerFn.FITTING or submitted_to_slurm():
            return
        path = last_checkpoint_path(trainer)
        if path is None or trainer.global_step == 0:
            return
        trainer.save_checkpoint(path, weights_only=False)  # what ModelCheckpoint writes (said, not left to a notice)
        self.saved = path
        if trainer.is_global_zero:
            log.info(f"saved {path} at step {trainer.global_step}")

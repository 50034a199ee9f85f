"""ModelCheckpoint whose ``last.ckpt`` is the state at the end of every epoch.

Lightning's ModelCheckpoint (2.6) rewrites ``last.ckpt`` at an epoch's end only when that epoch also
saved a top-k checkpoint: with ``save_top_k: 1`` on ``val/loss/total``, an epoch that is not the best
so far leaves ``last.ckpt`` at the last best epoch (or at the last step checkpoint), so the final
model of a run would never be saved and ``ckpt_path=last`` would resume from an older state.
"""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint


class EpochLastCheckpoint(ModelCheckpoint):
    """ModelCheckpoint (same arguments) that also writes ``last.ckpt`` after every epoch that saved nothing."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_unsaved(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_unsaved(trainer)

    def _save_last_if_unsaved(self, trainer: pl.Trainer) -> None:
        # Skipped when this step was saved already (the top-k save above wrote last.ckpt with it).
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

"""TensorBoard curves that go on where a resumed fit starts again."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from tensorboard.compat.proto.event_pb2 import Event, SessionLog


class TensorBoardResume(L.Callback):
    """When a fit resumes from a checkpoint (a requeued SLURM job, ``ckpt_path=last``), marks a
    restart at the restored step in the TensorBoard event file, as SummaryWriter's ``purge_step``
    does: TensorBoard then hides what the interrupted run logged after its checkpoint, so each
    curve goes on from the checkpoint instead of doubling back."""

    @rank_zero_only
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.ckpt_path is None or trainer.global_step == 0:
            return
        restart = Event(step=trainer.global_step, session_log=SessionLog(status=SessionLog.START))
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.file_writer.add_event(restart)  # SummaryWriter opens it when built

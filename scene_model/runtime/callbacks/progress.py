"""Lightning's progress bar, closed when a run stops on an error or a signal."""

from __future__ import annotations

import sys

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

BARS = ("train_progress_bar", "val_progress_bar", "test_progress_bar", "predict_progress_bar")


class ProgressBarClosedOnStop(TQDMProgressBar):
    """``TQDMProgressBar`` whose bars are closed when the fit stops on an exception (an error, SIGTERM,
    SIGINT): the bar's line ends there and is not redrawn when the process exits, so the one-line error
    or stop message that follows starts its own line and stays the last."""

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        for name in BARS:
            try:
                bar = getattr(self, name)
            except TypeError:  # that bar was never made
                continue
            bar.close()
        sys.stdout.flush()

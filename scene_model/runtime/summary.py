"""What a finished run says last: its result and where everything is, in a few lines."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger

SHOWN = ("HOTA", "DetA", "AssA", "IDF1")  # of the val/track/* metrics


def _shown(path: str | os.PathLike) -> str:
    """``path`` relative to the working directory where it lies below it (what a user types), else as it is."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def result_line(metrics: Mapping[str, object], every_n_epochs: int | None = None) -> str:
    """'val: HOTA 64.5  DetA 69.1  AssA 60.4  IDF1 78.0' from the last tracking evaluation's metrics."""
    found = {name: float(metrics[f"val/track/{name}"]) for name in SHOWN if f"val/track/{name}" in metrics}
    if not found:
        why = " (eval.every_n_epochs=0)" if every_n_epochs == 0 else ""
        loss = metrics.get("val/loss/total")
        return f"val: not tracked{why}" + (f"; val/loss/total {float(loss):.4g}" if loss is not None else "")
    return "val: " + "  ".join(f"{name} {value:.1f}" for name, value in found.items())


def run_summary(trainer: L.Trainer, output_dir: str | os.PathLike, fitted: bool, ckpt_path: str | None,
                every_n_epochs: int | None = None) -> list[str]:
    """The last lines of a successful run: the val split's tracking result, the run directory, the
    checkpoint (written, or evaluated when ``fitted`` is false) and how to look at the curves."""
    lines = [result_line(trainer.callback_metrics, every_n_epochs), f"run directory: {_shown(output_dir)}"]
    if fitted:
        last = Path(output_dir) / "checkpoints" / "last.ckpt"
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if last.is_file():
            lines.append(f"checkpoint: {_shown(last)}" + (f" (best val/loss/total: {Path(best).name})" if best else ""))
    elif ckpt_path:
        lines.append(f"evaluated: {_shown(ckpt_path)}")
    boards = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
    if boards:
        lines.append(f"tensorboard --logdir {_shown(boards[0].log_dir)}")
    return lines

"""Refused writes during a fit or an evaluation, as one error naming the file.

Lightning, TensorBoard and torch report a full or read-only disk in their own ways: TensorBoard's
event writer fails in a background thread and raises the ``OSError`` (without a file name) at the
next logging call, far from the file. ``output_errors`` names the file: the one the ``OSError``
names, else the event file of the run's TensorBoard logger when TensorBoard's writer raised it,
else the run directory.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterator
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger

from scene_model.errors import OutputError, SceneModelError
from scene_model.outputs import cannot_write, write_os_error


def event_file(trainer: L.Trainer) -> str | None:
    """The events file of the trainer's first TensorBoard logger (its directory if the name is unknown)."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            writer = getattr(logger._experiment, "file_writer", None)
            name = getattr(getattr(writer, "event_writer", None), "_file_name", None)
            return str(name or logger.log_dir)
    return None


def _raised_by_tensorboard(err: BaseException) -> bool:
    return any("tensorboard" in Path(frame.filename).parts for frame in traceback.extract_tb(err.__traceback__))


@contextlib.contextmanager
def output_errors(trainer: L.Trainer, output_dir: str | Path) -> Iterator[None]:
    """Raise a refused write (disk full, quota, read-only, no permission) inside the block as OutputError."""
    try:
        yield
    except SceneModelError:
        raise
    except Exception as err:
        found = write_os_error(err)
        if found is None:
            raise
        path = found.filename or (_raised_by_tensorboard(err) and event_file(trainer)) or f"under {output_dir}"
        what = "TensorBoard events" if path == event_file(trainer) else ""
        raise OutputError(cannot_write(path, found, what)) from None

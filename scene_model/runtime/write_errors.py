"""Refused writes during a fit or an evaluation, as one error naming the file.

Lightning, TensorBoard and torch report a full or read-only disk in their own ways: TensorBoard's
event writer fails in a background thread (whose traceback Python prints) and raises the ``OSError``,
without a file name, at the next logging call, where Lightning's logger turns it into
``ValueError: you tried to log ... which is currently not supported``. ``output_errors`` names the
file: the one the ``OSError`` names, else the run's TensorBoard event file when TensorBoard's writer
raised it, else the run directory; the writer thread's traceback is not printed.
"""

from __future__ import annotations

import contextlib
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger

from scene_model.errors import OutputError, SceneModelError
from scene_model.outputs import cannot_write, write_os_error


def event_file(trainer: L.Trainer) -> str | None:
    """The newest events file of the trainer's first TensorBoard logger (its directory when it has none)."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            files = sorted(Path(logger.log_dir).glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime)
            return str(files[-1] if files else logger.log_dir)
    return None


def _raised_by_tensorboard(err: BaseException) -> bool:
    return any("tensorboard" in Path(frame.filename).parts for frame in traceback.extract_tb(err.__traceback__))


@contextlib.contextmanager
def output_errors(trainer: L.Trainer, output_dir: str | Path) -> Iterator[None]:
    """Raise a refused write (disk full, quota, read-only, no permission) inside the block as OutputError."""
    previous_hook = threading.excepthook

    def quiet_refused_writes(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or write_os_error(args.exc_value) is None:
            previous_hook(args)  # a refused write is raised again in the main thread, and reported there

    threading.excepthook = quiet_refused_writes
    try:
        yield
    except SceneModelError:
        raise
    except Exception as err:
        found = write_os_error(err)
        if found is None:
            raise
        path = found.filename or (_raised_by_tensorboard(found) and event_file(trainer)) or f"under {output_dir}"
        what = "TensorBoard events" if path == event_file(trainer) else ""
        raise OutputError(cannot_write(path, found, what)) from None
    finally:
        threading.excepthook = previous_hook

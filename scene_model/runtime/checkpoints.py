"""Checkpoint files: written atomically in place, read with ``weights_only``, errors that say what to do.

Lightning (2.6) saves through an fsspec transaction whose temporary file lives in ``$TMPDIR``: when
that is another filesystem than the checkpoint (a node-local /tmp, checkpoints on shared storage)
the final move is a copy onto ``last.ckpt``, and a job killed during it leaves a truncated file in
place of the previous good one; a PermissionError there can also pass silently. ``AtomicCheckpointIO``
writes next to the target and renames over it, so a reader sees the old file or the new one, never a
part of one.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from scene_model.errors import CheckpointError
from scene_model.outputs import write_atomically

UNREADABLE = (
    "it is truncated, corrupt or not a PyTorch checkpoint; use another checkpoint of the run "
    "(checkpoints/epoch_NNN.ckpt)"
)


def save_atomically(checkpoint: dict[str, Any], path: str | os.PathLike) -> None:
    """``torch.save`` into a hidden file beside ``path``, flush it to disk, then rename it over ``path``.

    A full or read-only disk is a CheckpointError naming the file; the previous checkpoint stays whole.
    """
    path = Path(path)

    def write(partial: Path) -> None:
        # Through a Python file: a refused write is then an OSError (the context of torch's RuntimeError);
        # given a path, torch writes in C++ and reports only "unexpected pos" or "iostream error".
        with open(partial, "wb") as handle:
            torch.save(checkpoint, handle)

    write_atomically(path, write, "checkpoint", CheckpointError)
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` survive a crash of the machine; best effort (not every filesystem can)."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def check_exists(path: str | os.PathLike, given_as: str = "ckpt_path") -> None:
    """CheckpointError when there is no file at ``path``, saying to give an existing one as ``given_as``."""
    if not get_filesystem(path).exists(path):
        hint = " (or ckpt_path=last)" if given_as == "ckpt_path" else ", a checkpoint written by train.py"
        raise CheckpointError(f"checkpoint {path} does not exist; give an existing file as {given_as}{hint}")


def load_checkpoint_file(
    path: str | os.PathLike, map_location: Any = "cpu", weights_only: bool = True, given_as: str = "ckpt_path"
) -> dict[str, Any]:
    """Read a Lightning checkpoint; a missing, truncated, foreign or unsafe file raises CheckpointError.
    ``given_as``: where the user gave ``path`` (``ckpt_path``, or a tool's argument), named in what to do."""
    check_exists(path, given_as)
    unreadable = UNREADABLE + (" or start without ckpt_path" if given_as == "ckpt_path" else "")
    try:
        with get_filesystem(path).open(path, "rb") as handle:
            checkpoint = torch.load(handle, map_location=map_location, weights_only=weights_only)
    except pickle.UnpicklingError as err:
        unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        if unsafe:
            raise CheckpointError(
                f"checkpoint {path} holds a Python object ({unsafe.group(1)}) besides tensors and plain containers "
                "and is not loaded (weights_only=True); checkpoints written by this project's training load"
            ) from None
        raise CheckpointError(f"checkpoint {path} cannot be read ({_first_line(err)}): {unreadable}") from None
    except Exception as err:  # torch.load fails with RuntimeError, EOFError, KeyError ... on a damaged file
        raise CheckpointError(f"checkpoint {path} cannot be read ({_first_line(err)}): {unreadable}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        found = sorted(checkpoint)[:6] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(
            f"checkpoint {path} is not a Lightning checkpoint of a SceneModel (no 'state_dict'; found {found})"
        )
    return checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's TorchCheckpointIO with local files written atomically and loading errors explained.

    Remote paths (``s3://`` ...) keep Lightning's own saving. Loading uses ``weights_only=True``
    unless Lightning is asked for something else.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        save_atomically(checkpoint, path)

    def load_checkpoint(
        self, path, map_location: Callable | Any = lambda storage, loc: storage, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return load_checkpoint_file(path, map_location, weights_only=True if weights_only is None else weights_only)


def _first_line(err: BaseException) -> str:
    """'RuntimeError: PytorchStreamReader failed reading zip archive: failed finding central directory'."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = text.split(". ")[0].rstrip(".")
    return f"{type(err).__name__}: {text}" if text else type(err).__name__

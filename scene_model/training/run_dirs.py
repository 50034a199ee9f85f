"""Run and sweep directories that two runs never share.

The default directories are named by the second a run starts (``outputs/runs/<date>_<time>``): two
runs started in the same second (a job array, a script starting several) would write into one. The
resolver ``claim_dir`` creates the directory itself and, when another run created it first, takes
``<name>_1``, ``<name>_2`` ... instead. ``mkdir`` either creates a directory or fails, so exactly one
run gets each name. Like Hydra's ``now``, its value is cached in the config: the jobs of a sweep
(and a requeued SLURM job, whose config travels pickled) see the same directory. A directory given
on the command line (``hydra.run.dir=...``, e.g. to resume a run) is taken as it is.
"""

from __future__ import annotations

import itertools
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from scene_model.errors import OutputError, SceneModelError
from scene_model.outputs import cannot_write


def claim_dir(path: str) -> str:
    """Create ``path`` (or the first free ``path_<n>``) and return its name."""
    base = Path(path)
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        for n in itertools.count():
            candidate = base if n == 0 else base.with_name(f"{base.name}_{n}")
            try:
                os.mkdir(candidate)
            except FileExistsError:
                continue
            return str(candidate)
    except OSError as err:
        raise OutputError(cannot_write(err.filename or base, err, "the run directory")) from None
    raise AssertionError("unreachable")


if not OmegaConf.has_resolver("claim_dir"):
    OmegaConf.register_new_resolver("claim_dir", claim_dir, use_cache=True)


class CheckRunDir(Callback):
    """Hydra callback: the run (or sweep) directory is claimed and writable before Hydra writes into it,
    else one line ``OutputError: cannot write the run directory <dir>: <cause>`` and exit status 1
    instead of Hydra's traceback. (Hydra turns a callback's exception into a warning and goes on, so
    the callback exits itself.)"""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_writable(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_writable(config, "hydra.sweep.dir")


def check_writable(config: DictConfig, key: str) -> None:
    """Exit with one line when the directory ``key`` names cannot be created or written."""
    directory = None
    try:
        directory = Path(str(OmegaConf.select(config, key)))
        directory.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=directory).close()
    except Exception as err:
        cause = err
        while cause is not None and not isinstance(cause, SceneModelError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            refuse(f"{type(cause).__name__}: {cause}")
        if isinstance(err, OSError):
            refuse(f"OutputError: {cannot_write(err.filename or directory, err, 'the run directory')}")
        raise


def refuse(line: str) -> None:
    sys.stderr.write(f"{line}; choose another with paths.log_dir=... (or hydra.run.dir=...)\n")
    raise SystemExit(1)

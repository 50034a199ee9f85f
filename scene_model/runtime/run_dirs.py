"""Run and sweep directories that two runs never share.

The default directories are named by the second a run starts (``outputs/runs/<date>_<time>``): two
runs started in the same second (a job array, a script starting several) would write into one. The
resolver ``claim_dir`` creates the directory itself and, when another run created it first, takes
``<name>_1``, ``<name>_2`` ... instead. ``mkdir`` either creates a directory or fails, so exactly one
run gets each name. Like Hydra's ``now``, its value is cached in the config: the jobs of a sweep
(and a requeued SLURM job, whose config travels pickled) see the same directory. A directory given
on the command line (``hydra.run.dir=...``, e.g. to resume a run) is taken as it is.

A fresh fit (``train=true`` without ``ckpt_path``) into a directory that already holds an earlier run's
checkpoints is refused before Hydra writes the job's ``.hydra/`` files there, so the earlier run's
record (its config, Hydra config and overrides) stays as it was.
"""

from __future__ import annotations

import copy
import itertools
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.utils import get_object
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf, open_dict

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
    instead of Hydra's traceback; a fresh fit into a finished run's directory is refused there too
    (``on_run_start`` runs before Hydra saves the job's ``.hydra/`` files, ``on_job_start`` after).
    (Hydra turns a callback's exception into a warning and goes on, so the callback exits itself.)"""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_writable(config, "hydra.run.dir")
        found = earlier_checkpoints(config, Path(str(OmegaConf.select(config, "hydra.run.dir"))))
        if found is not None:
            sys.stderr.write(f"ConfigError: {overwrite_message(found)}\n")
            raise SystemExit(1)

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


def overwrite_message(directory: Path) -> str:
    return (
        f"{directory} already holds checkpoints of an earlier run: resume it with ckpt_path=last, "
        "or start a new run in another directory (leave hydra.run.dir at its default)"
    )


def has_checkpoints(directory: Path) -> bool:
    return directory.is_dir() and any(directory.glob("*.ckpt"))


def earlier_checkpoints(config: DictConfig, run_dir: Path) -> Path | None:
    """The checkpoint folder (a ModelCheckpoint's ``dirpath`` in ``callbacks``, with ``run_dir`` as the run
    directory) that holds checkpoints a fresh fit would write over; None for an evaluation, a resumed fit,
    or a folder without checkpoints."""
    if not config.get("train", True) or config.get("ckpt_path"):
        return None
    config = copy.deepcopy(config)
    with open_dict(config):
        if "${hydra:runtime.output_dir}" in str(OmegaConf.to_container(config.paths).get("output_dir")):
            config.paths.output_dir = str(run_dir)  # what Hydra will set it to
    for node in (config.get("callbacks") or {}).values():
        target = OmegaConf.select(node, "_target_", default=None) if isinstance(node, DictConfig) else None
        try:
            is_checkpoint = target is not None and issubclass(get_object(target), ModelCheckpoint)
        except Exception:
            continue  # an unknown target: the run reports it with its key
        dirpath = OmegaConf.select(node, "dirpath", default=None) if is_checkpoint else None
        if dirpath and has_checkpoints(Path(str(dirpath))):
            return Path(str(dirpath))
    return None


def refuse(line: str) -> None:
    sys.stderr.write(f"{line}; choose another with paths.log_dir=... (or hydra.run.dir=...)\n")
    raise SystemExit(1)

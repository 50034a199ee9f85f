"""Runs under SLURM through submitit: who owns the requeue signal, and where a requeued job resumes.

submitit owns the requeue signal: SLURM sends USR2 ``signal_delay_s`` before the time limit (or at
preemption), submitit requeues the job from global rank 0 and the same pickled job, with the same
run directory, starts again. Lightning's SLURM environment is told not to requeue on its own, and the
restarted job resumes from its own ``checkpoints/last.ckpt``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import OmegaConf

log = logging.getLogger(__name__)

GPU_ACCELERATORS = ("gpu", "cuda", "auto")


def gpus_per_node(accelerator: str, devices: int) -> int | None:
    """``hydra.launcher.gpus_per_node``: one GPU per device on GPU trainers, none on CPU ones."""
    return int(devices) if str(accelerator) in GPU_ACCELERATORS else None


if not OmegaConf.has_resolver("slurm_gpus_per_node"):
    OmegaConf.register_new_resolver("slurm_gpus_per_node", gpus_per_node)


def submitted_to_slurm() -> bool:
    """True inside a job that submitit submitted to SLURM (``hydra/launcher=slurm``)."""
    return os.environ.get("SUBMITIT_EXECUTOR") == "slurm" and SLURMEnvironment.detect()


def cluster_plugins() -> list[SLURMEnvironment]:
    """Trainer plugins: under submitit, Lightning's SLURM environment without its own auto-requeue."""
    return [SLURMEnvironment(auto_requeue=False)] if submitted_to_slurm() else []


def restart_count() -> int:
    """How many times SLURM has requeued this job (0 for its first start)."""
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0)


def has_last_checkpoint(callback: ModelCheckpoint | None) -> bool:
    if callback is None or callback.dirpath is None:
        return False
    pattern = f"{callback.CHECKPOINT_NAME_LAST}*{callback.FILE_EXTENSION}"
    return any(Path(callback.dirpath).glob(pattern))


def resume_ckpt_path(ckpt_path: str | None, callback: ModelCheckpoint | None) -> str | None:
    """The checkpoint a fit starts from: ``"last"`` (Lightning resolves it to ``callback``'s
    last.ckpt) when submitit requeued this job and the run has saved one, else ``ckpt_path``.

    Outside submitit (a hand-written sbatch script) Lightning owns the requeue and resumes from
    its own hpc checkpoint when ``ckpt_path`` is None: that is left to it."""
    if restart_count() > 0 and submitted_to_slurm() and has_last_checkpoint(callback):
        log.info(f"requeued job (restart {restart_count()}): resuming from the last checkpoint in {callback.dirpath}")
        return "last"
    return ckpt_path

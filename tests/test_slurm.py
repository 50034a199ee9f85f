"""train.py through hydra/launcher=slurm on a real local SLURM cluster (``make test-slurm``)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from tests.conftest import tiny_overrides
from tests.slurm.plugin import REPO_ROOT, train_command
from tests.test_train import read_events

pytestmark = pytest.mark.slurm

DDP_EPOCHS = 8  # long enough that USR2, sent once the first last.ckpt exists, lands before the end (an epoch takes ~2 s)
DDP_BATCHES = 2  # per epoch and rank


def tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def only_sweep_dir(log_dir: Path) -> Path:
    sweeps = list((log_dir / "multiruns").iterdir())
    assert len(sweeps) == 1, sweeps
    return sweeps[0]


def job_dirs(sweep: Path) -> list[str]:
    return sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))


def wait_for(condition, timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:.0f} s\n" + (tail(log.read_text()) if log else ""))
        time.sleep(0.5)
    return value


def test_sweep_is_one_job_array_with_a_run_directory_per_job(submit_train, tiny_root, tmp_path):
    result = submit_train("optimizer.lr=1e-4,3e-4", "debug=fast", *tiny_overrides(tiny_root), log_dir=tmp_path)
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    sweep = only_sweep_dir(tmp_path)
    assert job_dirs(sweep) == ["0", "1"]
    for job in ("0", "1"):
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
        assert (sweep / job / "config_resolved.yaml").is_file()
        assert list((sweep / job / "tensorboard").glob("events.out.tfevents.*"))
    lrs = sorted(yaml.safe_load((sweep / j / ".hydra" / "config.yaml").read_text())["optimizer"]["lr"] for j in "01")
    assert lrs == [1e-4, 3e-4]
    (script,) = (sweep / ".submitit").glob("*submission*.sh")
    sbatch = script.read_text()
    assert "#SBATCH --array=0-1%2" in sbatch
    assert "#SBATCH --ntasks-per-node=1" in sbatch and "#SBATCH --nodes=1" in sbatch
    assert "#SBATCH --job-name=train" in sbatch
    assert "--gpus-per-node" not in sbatch  # a CPU trainer asks for no GPU
    tasks = sorted(p.name.split("_") for p in (sweep / ".submitit").iterdir() if p.is_dir() and "_" in p.name)
    assert [index for _, index in tasks] == ["0", "1"] and tasks[0][0] == tasks[1][0]  # <array id>_<index>


@pytest.fixture(scope="module")
def requeued_ddp_job(slurm_cluster, tiny_root, tmp_path_factory) -> SimpleNamespace:
    """One job of 2 tasks (DDP, gloo): USR2 once its first last.ckpt is written, so that submitit
    requeues it; the requeued job runs to the end."""
    log_dir = tmp_path_factory.mktemp("ddp")
    log = log_dir / "submit.log"
    overrides = ["trainer=ddp_cpu", *tiny_overrides(tiny_root), f"trainer.max_epochs={DDP_EPOCHS}",
                 f"trainer.limit_train_batches={DDP_BATCHES}"]
    with log.open("w") as out, subprocess.Popen(
        train_command(*overrides, log_dir=log_dir), cwd=REPO_ROOT, env=slurm_cluster.env, stdout=out,
        stderr=subprocess.STDOUT,
    ) as proc:
        try:
            last = wait_for(lambda: next(log_dir.glob("multiruns/*/0/checkpoints/last.ckpt"), None), 600,
                            "no checkpoints/last.ckpt", log)
            (job_id,) = [p.name for p in last.parents[2].joinpath(".submitit").iterdir() if p.name.isdigit()]
            step_at_signal = torch.load(last, map_location="cpu", weights_only=True, mmap=True)["global_step"]
            slurm_cluster.run("scancel", "--signal=USR2", job_id)  # what SLURM sends before a time limit
            wait_for(lambda: slurm_cluster.job_state(job_id) == "PENDING", 120, "the job was not requeued", log)
            slurm_cluster.release(job_id)
            proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
    sweep = only_sweep_dir(log_dir)
    submitit = sweep / ".submitit" / job_id
    return SimpleNamespace(
        returncode=proc.returncode, output=log.read_text(), sweep=sweep, run=sweep / "0", job_id=job_id,
        step_at_signal=step_at_signal, sbatch=(submitit / f"{job_id}_submission.sh").read_text(),
        task_logs=[(submitit / f"{job_id}_{rank}_log.out").read_text() + (submitit / f"{job_id}_{rank}_log.err").read_text()
                   for rank in (0, 1)],
    )


def test_ddp_job_runs_one_task_per_device_into_one_run_directory(requeued_ddp_job):
    job = requeued_ddp_job
    assert job.returncode == 0, tail(job.output)
    assert "#SBATCH --ntasks-per-node=2" in job.sbatch and "#SBATCH --nodes=1" in job.sbatch
    assert job.sbatch.count("srun ") == 1  # submitit's srun, none of ours
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in job.task_logs[0]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in job.task_logs[1]
    assert "distributed_backend=gloo" in job.task_logs[0]
    assert job_dirs(job.sweep) == ["0"]
    assert sorted(p.name for p in job.run.iterdir() if not p.name.startswith(".")) == [
        "checkpoints", "config_resolved.yaml", "tensorboard", "tracking", "train.log", "viz"]
    assert (job.run / "checkpoints" / "last.ckpt").is_file()
    assert len(list((job.run / "checkpoints").glob("epoch_*.ckpt"))) == 1
    assert len(list((job.run / "viz").glob("epoch_*.png"))) == DDP_EPOCHS


def test_ddp_validation_metric_is_synced_across_ranks(requeued_ddp_job):
    values = [re.findall(r"val/loss/total = ([0-9.eE+-]+)", log) for log in requeued_ddp_job.task_logs]
    assert values[0] and values[1], requeued_ddp_job.task_logs
    assert values[0][-1] == values[1][-1]


def test_requeued_job_resumes_from_its_own_last_checkpoint(requeued_ddp_job):
    job = requeued_ddp_job
    assert job.returncode == 0, tail(job.output)
    rank0 = job.task_logs[0]
    assert "Requeued job" in rank0
    assert f"Restoring states from the checkpoint path at {job.run}/checkpoints/last.ckpt" in rank0
    final = torch.load(job.run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert final["global_step"] == DDP_EPOCHS * DDP_BATCHES
    # One run directory: the requeued job wrote into the same one, and TensorBoard's curve goes on.
    assert len(list((job.run / "tensorboard").glob("events.out.tfevents.*"))) == 2
    steps = [event.step for event in read_events(job.run).Scalars("train/loss/total_step")]
    assert steps == list(range(DDP_EPOCHS * DDP_BATCHES)), steps
    assert 0 < job.step_at_signal < DDP_EPOCHS * DDP_BATCHES

"""Resuming a run in its own directory: by hand (ckpt_path=last) and as a requeued SLURM job."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from scene_model.runtime.run import train
from scene_model.runtime.slurm import gpus_per_node, resume_ckpt_path
from tests.conftest import compose_config
from tests.test_train import read_events


def logged_steps(run: Path) -> list[int]:
    return [event.step for event in read_events(run).Scalars("train/loss/total_step")]


def global_step(ckpt: Path) -> int:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"]


def test_ckpt_path_last_resumes_the_run_in_its_directory(tiny_cfg):
    first = tiny_cfg("trainer.max_epochs=1")
    train(first)
    run = Path(first.paths.output_dir)
    assert global_step(run / "checkpoints" / "last.ckpt") == 2
    train(tiny_cfg("trainer.max_epochs=2", "ckpt_path=last"))
    assert global_step(run / "checkpoints" / "last.ckpt") == 4
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 2
    assert logged_steps(run) == [0, 1, 2, 3]


def test_resumed_curves_drop_what_was_logged_after_the_checkpoint(tiny_cfg):
    first = tiny_cfg("trainer.max_epochs=2", "callbacks.model_checkpoint.save_top_k=-1")
    train(first)
    run = Path(first.paths.output_dir)
    assert logged_steps(run) == [0, 1, 2, 3]
    # Resuming from epoch 0's checkpoint (step 2) logs steps 2 and 3 again: the earlier ones are hidden.
    train(tiny_cfg("trainer.max_epochs=3", f"ckpt_path={run}/checkpoints/epoch_000.ckpt"))
    assert logged_steps(run) == [0, 1, 2, 3, 4, 5]


def test_requeued_job_resumes_from_last_only_when_the_run_saved_one(tmp_path, monkeypatch):
    callback = ModelCheckpoint(dirpath=tmp_path)
    for name, value in (("SLURM_NTASKS", "2"), ("SLURM_NTASKS_PER_NODE", "2"), ("SLURM_JOB_NAME", "train")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    assert resume_ckpt_path(None, callback) is None
    (tmp_path / "last.ckpt").write_bytes(b"")
    assert resume_ckpt_path("/given.ckpt", callback) == "/given.ckpt"  # a first start keeps what was asked
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert resume_ckpt_path(None, callback) is None  # a hand-written sbatch script: Lightning's own requeue
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    assert resume_ckpt_path(None, callback) == "last"
    assert resume_ckpt_path("/given.ckpt", callback) == "last"
    (tmp_path / "last.ckpt").unlink()
    assert resume_ckpt_path("/given.ckpt", callback) == "/given.ckpt"  # requeued before its first save


def test_slurm_launcher_asks_one_task_per_device_and_gpus_only_for_gpu_trainers(tmp_path):
    assert gpus_per_node("gpu", 4) == 4 and gpus_per_node("auto", 2) == 2 and gpus_per_node("cpu", 2) is None
    for trainer, gpus in (("ddp", 4), ("ddp_cpu", None)):
        cfg = compose_config(["hydra/launcher=slurm", f"trainer={trainer}", "trainer.num_nodes=2"])
        launcher = cfg.hydra.launcher
        assert launcher.tasks_per_node == cfg.trainer.devices and launcher.nodes == 2
        assert launcher.gpus_per_node == gpus
        assert launcher.max_num_timeout > 0 and launcher.name not in ("bash", "interactive")


def test_last_checkpoint_is_the_final_state_when_the_last_epoch_is_not_the_best(tiny_cfg):
    # Monitoring the epoch number at mode=min makes epoch 0 the best; epochs 1 and 2 save no top-k
    # checkpoint, and the step checkpoint writes last.ckpt at step 5 of 6 (2 steps an epoch).
    cfg = tiny_cfg("trainer.max_epochs=3", "callbacks.model_checkpoint.monitor=epoch", "training.checkpoint_every_n_steps=5")
    train(cfg)
    checkpoints = Path(cfg.paths.output_dir) / "checkpoints"
    assert global_step(checkpoints / "epoch_000.ckpt") == 2
    assert global_step(checkpoints / "last.ckpt") == 6

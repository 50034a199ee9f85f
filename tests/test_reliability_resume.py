"""A run killed with SIGKILL in the middle of an epoch resumes from its last checkpoint with ckpt_path=last."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import tiny_overrides
from tests.test_cli import run_train

STEPS_PER_EPOCH = 4


def logged_steps(event_file: Path, tag: str = "train/loss/total_step") -> list[int]:
    events = EventAccumulator(str(event_file), size_guidance={"scalars": 0})
    events.Reload()
    return [e.step for e in events.Scalars(tag)]


def optimizer_summary(optimizer_state: dict) -> tuple[list[float], float]:
    """(distinct AdamW step counts, sum of every first moment): enough to tell two optimiser states apart."""
    state = optimizer_state["state"]
    steps = sorted({float(s["step"]) for s in state.values()})
    return steps, sum(float(s["exp_avg"].double().sum()) for s in state.values())


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_restores_everything(tiny_root, tmp_path):
    run = tmp_path / "run"
    common = [
        *tiny_overrides(tiny_root), "data.train_stride=1", f"trainer.limit_train_batches={STEPS_PER_EPOCH}",
        "trainer.max_epochs=2", "training.checkpoint_every_n_steps=2", f"hydra.run.dir={run}",
    ]
    # Killed after step 7, in the middle of epoch 1; the step checkpoint of step 6 is the last one.
    killed = run_train(*common, "+callbacks.killer._target_=tests.probes.SigkillAtStep", "+callbacks.killer.step=7")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert (checkpoint["global_step"], checkpoint["epoch"]) == (6, 1)
    assert not list((run / "checkpoints").glob(".*")), "a partial checkpoint was left behind"
    (first_events,) = (run / "tensorboard").glob("events.*")
    assert set(range(checkpoint["global_step"])) <= set(logged_steps(first_events))

    probe = tmp_path / "resumed.json"
    resumed = run_train(*common, "ckpt_path=last", "+callbacks.probe._target_=tests.probes.RecordTrainingState",
                        f"+callbacks.probe.path={probe}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    found = json.loads(probe.read_text())
    assert (found["global_step"], found["epoch"]) == (6, 1)
    steps, moments = optimizer_summary(checkpoint["optimizer_states"][0])
    assert found["optimizer_steps"] == steps == [6.0]
    assert found["optimizer_exp_avg_sum"] == pytest.approx(moments, rel=1e-9)
    assert found["scheduler_last_epoch"] == checkpoint["lr_schedulers"][0]["last_epoch"] == 6
    assert found["lrs"] == [g["lr"] for g in checkpoint["optimizer_states"][0]["param_groups"]]
    # The rest of epoch 1 is trained once: batches 2 and 3, steps 7 and 8, then the run ends.
    assert [(t["epoch"], t["batch_idx"], t["global_step"]) for t in found["trained"]] == [(1, 2, 7), (1, 3, 8)]
    final = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert (final["global_step"], final["epoch"]) == (8, 1)

    # Events written before the checkpoint survive beside the resumed run's, which go on from it.
    files = sorted((run / "tensorboard").glob("events.*"), key=lambda p: p.stat().st_mtime)
    assert files[0] == first_events and len(files) == 2
    assert set(range(6)) <= set(logged_steps(files[0]))
    assert logged_steps(files[1]) == [6, 7]

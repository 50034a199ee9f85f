"""The training run end to end (train(cfg) as train.py calls it): bad checkpoints, non-finite losses,
an occupied run directory, and determinism."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from scene_model.errors import CheckpointError, ConfigError, DivergenceError, SceneModelError
from scene_model.runtime.run import main, one_line, train, user_error
from scene_model.training.head_adapter import HeadAdapter
from tests.conftest import compose_config, tiny_overrides

STEPS = ["trainer.limit_train_batches=3", "training.checkpoint_every_n_steps=2"]


def step_losses(run_dir: Path, tag: str = "train/loss/total_step") -> list[float]:
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return [e.value for e in events.Scalars(tag)]


@pytest.fixture(scope="module")
def trained(tiny_root, tmp_path_factory):
    """One short run: (its config overrides, its run directory)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    overrides = tiny_overrides(tiny_root) + STEPS
    train(compose_config(overrides, run))
    return overrides, run


def test_checkpoints_are_whole_and_load_with_weights_only(trained):
    _, run = trained
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["epoch_000.ckpt", "last.ckpt"], names  # no partial file left, no last-v1.ckpt
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 3
    assert checkpoint["callbacks"]["SkipNonFiniteSteps"] == {"consecutive": 0, "total": 0}


def test_resuming_another_model_names_the_differing_keys(trained, tmp_path):
    overrides, run = trained
    cfg = compose_config(overrides + ["model.num_queries=4", f"ckpt_path={run}/checkpoints/last.ckpt"], tmp_path)
    with pytest.raises(CheckpointError, match=r"last\.ckpt was written by another model: its model\.num_queries=8 "
                                              r"there, 4 here; \d+ tensor\(s\) of another shape"):
        train(cfg)


def test_a_corrupt_checkpoint_is_one_line_and_exit_code_1(trained, tmp_path, caplog):
    overrides, run = trained
    broken = tmp_path / "broken.ckpt"
    data = (run / "checkpoints" / "last.ckpt").read_bytes()
    broken.write_bytes(data[: len(data) // 3])
    cfg = compose_config(overrides + ["train=false", f"ckpt_path={broken}"], tmp_path / "eval")
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exited:
        main(cfg)
    assert exited.value.code == 1
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage().startswith(f"CheckpointError: checkpoint {broken} cannot be read")
    assert "\n" not in record.getMessage()


def test_a_fresh_run_refuses_to_overwrite_earlier_checkpoints(trained):
    overrides, run = trained
    with pytest.raises(ConfigError, match=r"already holds checkpoints of an earlier run: resume it with ckpt_path=last"):
        train(compose_config(overrides, run))


def test_non_finite_losses_in_a_row_stop_with_the_batch_named(tiny_root, tmp_path, monkeypatch, caplog):
    original = HeadAdapter.losses_and_assignment

    def nan_when_training(self, *args, **kwargs):
        losses, assigned = original(self, *args, **kwargs)
        if torch.is_grad_enabled():
            losses["total"] = losses["total"] * math.nan
        return losses, assigned

    monkeypatch.setattr(HeadAdapter, "losses_and_assignment", nan_when_training)
    cfg = compose_config(tiny_overrides(tiny_root) + ["training.max_bad_steps=2"], tmp_path / "run")
    with caplog.at_level(logging.WARNING), pytest.raises(DivergenceError) as caught:
        train(cfg)
    message = str(caught.value)
    assert "2 optimisation steps in a row had a non-finite loss or gradient (training.max_bad_steps=2)" in message
    assert "last batch: synth000" in message and " frames " in message
    skipped = [r.getMessage() for r in caplog.records if "step skipped" in r.getMessage()]
    assert len(skipped) == 2 and "synth000" in skipped[0]
    assert step_losses(tmp_path / "run", "train/skipped_steps") == [1.0]  # logged at the step that was not stopped


def test_the_same_seed_gives_the_same_losses(trained, tmp_path):
    overrides, first = trained
    second, other_seed = tmp_path / "second", tmp_path / "other"
    train(compose_config(overrides, second))
    train(compose_config(overrides + ["seed=7"], other_seed))
    reference = step_losses(first)
    assert len(reference) == 3
    assert step_losses(second) == pytest.approx(reference, rel=1e-6, abs=1e-6)
    assert step_losses(other_seed) != pytest.approx(reference, rel=1e-3)


def test_user_errors_lose_the_dataloader_worker_traceback():
    from hydra.errors import InstantiationException

    from scene_model.errors import DataFormatError

    wrapped = DataFormatError(
        "Caught DataFormatError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\nscene_model.errors.DataFormatError: corrupt or truncated image a/b.jpg: bad'
    )
    assert one_line(wrapped) == "DataFormatError: corrupt or truncated image a/b.jpg: bad"
    inner = ConfigError("data.root: expected str")
    try:
        raise InstantiationException("Error in call to target") from inner
    except InstantiationException as outer:
        assert user_error(outer) is inner
    assert user_error(RuntimeError("a bug")) is None
    assert isinstance(user_error(inner), SceneModelError)


"""Tracking evaluation inside runs: val/HOTA & co. during a fit, and the evaluate-only path."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from lightning.pytorch.trainer.states import TrainerFn
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from scene_model.errors import ConfigError
from scene_model.tracking import SequenceTracker
from scene_model.tracking.oracle import oracle_predict
from scene_model.tracking.trackeval_metrics import HEADLINE
from scene_model.training.callbacks import TrackingEvaluator
from scene_model.training.run import train


def test_fit_logs_tracking_metrics_writes_results_and_the_track_picture(tiny_cfg):
    cfg = tiny_cfg("optimized_metric=val/HOTA")
    value = train(cfg)
    run = Path(cfg.paths.output_dir)
    assert value is not None and math.isfinite(value) and 0.0 <= value <= 100.0
    assert sorted(p.name for p in (run / "tracking" / "val").iterdir()) == ["synth0003.txt"]
    summary = json.loads((run / "tracking" / "val_metrics.json").read_text())
    assert summary["combined"]["HOTA"] == pytest.approx(value, abs=1e-5)
    assert (run / "tracking" / "val_metrics.csv").is_file()
    assert (run / "viz" / "tracks" / "epoch_000.png").is_file()
    assert not (run / "tracking" / "test").exists()  # submission files only in evaluate-only runs
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    for name in HEADLINE:
        assert f"val/{name}" in events.Tags()["scalars"], name
    assert "val/tracks" in events.Tags()["images"]


def test_evaluate_only_run_scores_val_and_writes_the_submission(tiny_cfg, monkeypatch):
    """With the model replaced by the ground truth, the whole path must report HOTA 100."""
    original = SequenceTracker.track
    monkeypatch.setattr(SequenceTracker, "track", lambda self, predict, *a: original(self, oracle_predict(), *a))
    cfg = tiny_cfg("train=false", "eval.untrained=true", "optimized_metric=val/HOTA", "data.eval_size=108")
    assert train(cfg) == pytest.approx(100.0, abs=1e-3)
    tracking = Path(cfg.paths.output_dir) / "tracking"
    assert (tracking / "val" / "synth0003.txt").is_file()
    assert sorted(p.name for p in (tracking / "test").iterdir()) == ["synth0004.txt"]
    with zipfile.ZipFile(tracking / "test.zip") as bundle:
        assert bundle.namelist() == ["synth0004.txt"]
    assert (tracking / "test" / "synth0004.txt").read_text() == ""  # the test split has no gt to show the oracle


@pytest.mark.slow
def test_evaluate_only_from_a_checkpoint(tiny_cfg, tmp_path):
    fit = tiny_cfg()
    train(fit)
    ckpt = tmp_path / "last.ckpt"
    Path(fit.paths.output_dir, "checkpoints", "last.ckpt").rename(ckpt)
    cfg = tiny_cfg("train=false", f"ckpt_path={ckpt}", "optimized_metric=val/IDF1")
    value = train(cfg)
    assert value is not None and 0.0 <= value <= 100.0
    assert (Path(cfg.paths.output_dir) / "tracking" / "test.zip").is_file()


def test_a_missing_submit_split_names_the_key(tiny_cfg):
    cfg = tiny_cfg("train=false", "eval.untrained=true", "eval.submit_split=nosuchsplit")
    with pytest.raises(ConfigError, match="eval.submit_split=nosuchsplit.*does not exist"):
        train(cfg)


@pytest.mark.parametrize(
    ("fn", "epoch", "max_epochs", "every", "expected"),
    [
        (TrainerFn.FITTING, 0, 6, 2, False),
        (TrainerFn.FITTING, 1, 6, 2, True),
        (TrainerFn.FITTING, 4, 5, 2, True),  # the last epoch always
        (TrainerFn.FITTING, 1, 6, 0, False),
        (TrainerFn.VALIDATING, 0, 6, 0, True),
        (TrainerFn.TESTING, 1, 6, 1, False),
    ],
)
def test_when_tracking_runs(fn, epoch, max_epochs, every, expected):
    trainer = SimpleNamespace(
        sanity_checking=False, state=SimpleNamespace(fn=fn), current_epoch=epoch, max_epochs=max_epochs
    )
    assert TrackingEvaluator(SequenceTracker(), every_n_epochs=every).should_run(trainer) is expected
    trainer.sanity_checking = True
    assert TrackingEvaluator(SequenceTracker(), every_n_epochs=every).should_run(trainer) is False

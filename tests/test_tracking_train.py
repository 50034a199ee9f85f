"""Tracking evaluation inside runs: val/track/HOTA & co. during a fit, and the evaluate-only path."""

from __future__ import annotations

import json
import logging
import math
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from lightning.pytorch.trainer.states import TrainerFn
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from scene_model.data.dataset import ClipDataset
from scene_model.errors import ConfigError
from scene_model.models.scene_model import SceneModel
from scene_model.runtime.run import train
from scene_model.tools import threshold_sweep
from scene_model.tools.oracle import oracle_predict
from scene_model.tracking import TrackerOptions
from scene_model.tracking.diagnostics import DIAGNOSTICS
from scene_model.tracking.drawing import ALERT
from scene_model.tracking.sequence_tracker import TrackingSession
from scene_model.tracking.trackeval_metrics import HEADLINE
from scene_model.training import precision
from scene_model.training.callbacks import TrackingEvaluator
from scene_model.training.lit_module import SceneModelLightningModule
from tests.builders import datamodule as make_datamodule


def test_fit_logs_tracking_metrics_writes_results_and_the_track_picture(tiny_cfg):
    cfg = tiny_cfg("optimized_metric=val/track/HOTA")
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
    scalars = events.Tags()["scalars"]
    for name in HEADLINE:
        assert f"val/track/{name}" in scalars, name
    for name in DIAGNOSTICS:
        assert f"val/diag/{name}" in scalars, name
    assert {"val/diag/score_matched", "val/diag/score_unmatched"} <= set(events.Tags()["histograms"])
    assert {"val/tracks", "val/predictions"} <= set(events.Tags()["images"])
    # The pictures and the histograms of a validation sit at the step of its scalars.
    step = {e.step for e in events.Scalars("val/track/HOTA")}
    assert step and {e.step for e in events.Images("val/tracks")} == step
    assert {e.step for e in events.Histograms("val/diag/score_unmatched")} == step
    written = events.Scalars("val/diag/boxes_written")[-1].value
    assert written == sum(len(p.read_text().splitlines()) for p in (run / "tracking" / "val").iterdir())
    assert events.Scalars("val/diag/gt_boxes")[-1].value > 0
    assert summary["diagnostics"]["boxes_written"] == written and "score_histograms" in summary["diagnostics"]


def test_evaluate_only_run_scores_val_and_writes_the_submission(tiny_cfg, monkeypatch):
    """With the model's predictions replaced by the ground truth, the whole path must report HOTA 100;
    the submission split (no gt: the ground-truth model sees nothing there) is tracked too."""
    oracle, step = oracle_predict(20), TrackingSession.step
    monkeypatch.setattr(TrackingSession, "step", lambda self, batch, outputs: step(self, batch, oracle(batch)))
    cfg = tiny_cfg(
        "train=false", "eval.untrained=true", "optimized_metric=val/track/HOTA", "data.eval_size=108",
        "trainer.limit_val_batches=1.0", "eval.tracker.smooth_sigma=0",  # exact boxes stay exact
    )
    assert train(cfg) == pytest.approx(100.0, abs=1e-3)
    tracking = Path(cfg.paths.output_dir) / "tracking"
    diagnostics = json.loads((tracking / "val_metrics.json").read_text())["diagnostics"]
    combined = json.loads((tracking / "val_metrics.json").read_text())["combined"]
    assert diagnostics["boxes_written"] == combined["GT_Dets"] > 0
    assert diagnostics["matched_iou"] == pytest.approx(1.0, abs=1e-4) and diagnostics["recall_75"] == 1.0
    assert diagnostics["score_auc"] == 1.0 and diagnostics["queries_above_start"] == pytest.approx(diagnostics["gt_per_frame"])
    assert (tracking / "val" / "synth0003.txt").is_file()
    assert sorted(p.name for p in (tracking / "test").iterdir()) == ["synth0004.txt"]
    with zipfile.ZipFile(tracking / "test.zip") as bundle:
        assert bundle.namelist() == ["synth0004.txt"]
    assert (tracking / "test" / "synth0004.txt").read_text() == ""


def test_an_epoch_runs_each_val_window_once_and_encodes_each_frame_once(tiny_cfg, monkeypatch):
    """The validation loop's one forward of each window gives its losses and its tracks: the windows come
    in order (each sequence's overlapping windows one after the other), each is read and decoded once,
    and the frame two windows share is encoded once."""
    read, decoded, encoded = [], [], []
    getitem, model_decode, model_encode = ClipDataset.__getitem__, SceneModel.decode, SceneModel.encode_frames

    def counting_getitem(self, index):
        clip = getitem(self, index)
        if not self.train:
            read.append((clip.sequence_id, tuple(clip.frame_indices.tolist())))
        return clip

    def counting_decode(self, clip, *args, **kwargs):
        if not self.training:
            decoded.append(clip.memory.shape[0])
        return model_decode(self, clip, *args, **kwargs)

    def counting_encode(self, frames, *args, **kwargs):
        if not self.training:
            encoded.append(frames.shape[0])
        return model_encode(self, frames, *args, **kwargs)

    monkeypatch.setattr(ClipDataset, "__getitem__", counting_getitem)
    monkeypatch.setattr(SceneModel, "decode", counting_decode)
    monkeypatch.setattr(SceneModel, "encode_frames", counting_encode)
    cfg = tiny_cfg("trainer.limit_val_batches=1.0", "data.clip_len=4", "optimized_metric=val/track/HOTA")
    assert train(cfg) is not None
    windows = ClipDataset.evaluation(make_datamodule(cfg.data.root).load_split("val"), 4, None, 3, False)
    expected = [(windows.sequences[s].info.name, tuple(range(f, f + 4))) for s, f in zip(windows.seq_index, windows.starts, strict=True)]
    assert read == expected  # each window once, in order, consecutive ones sharing a frame
    assert sum(decoded) == len(expected)  # one forward per window: losses, pictures and tracks from it
    assert sum(encoded) == sum(r.info.length for r in windows.sequences)  # each frame encoded once
    assert (Path(cfg.paths.output_dir) / "tracking" / "val_metrics.json").is_file()


@pytest.mark.slow
def test_evaluate_only_from_a_checkpoint_scores_what_the_fit_scored(tiny_cfg, tmp_path, monkeypatch, caplog):
    """The same weights on the same val split give the same tracks: the fit's last validation, ``train=false``
    on its checkpoint and the threshold sweep's row at the run's thresholds agree to the last digit."""
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)  # the tools compute as the fit did
    every_query = ["eval.tracker.start_threshold=0.0", "eval.tracker.keep_threshold=0.0", "trainer.limit_val_batches=1.0"]  # boxes to score
    fit = tiny_cfg(*every_query, "optimized_metric=val/track/HOTA")
    fitted = train(fit)
    ckpt = tmp_path / "last.ckpt"
    Path(fit.paths.output_dir, "checkpoints", "last.ckpt").rename(ckpt)
    cfg = tiny_cfg("train=false", f"ckpt_path={ckpt}", *every_query, "optimized_metric=val/track/HOTA")
    with caplog.at_level(logging.INFO, logger="scene_model.runtime.run"):
        assert train(cfg) == pytest.approx(fitted, abs=1e-5) and fitted > 0
    said = [r.getMessage() for r in caplog.records if r.name == "scene_model.runtime.run"]
    assert said[-4].startswith(f"val: HOTA {fitted:.1f}") and said[-2] == f"evaluated: {ckpt}", said
    assert (Path(cfg.paths.output_dir) / "tracking" / "test.zip").is_file()
    rows = threshold_sweep.main([str(ckpt), "--start", "0.0", "0.5", "--keep", "0.0", "--device", "cpu"])
    by_thresholds = {(r.start_threshold, r.keep_threshold): r.metrics["HOTA"] for r in rows}
    assert set(by_thresholds) == {(0.0, 0.0), (0.5, 0.0)}
    assert by_thresholds[(0.0, 0.0)] == pytest.approx(fitted, abs=1e-5)  # fitted: as logged, in float32


def test_a_model_that_writes_no_box_says_so_in_the_console_and_on_the_pictures(tiny_cfg, monkeypatch, caplog):
    forward = SceneModelLightningModule.loss_step

    def silent(self, batch, train, tracks=None):  # the validation's forward: its picture and its tracks
        losses, outputs = forward(self, batch, train, tracks)
        return losses, {**outputs, "exist_conf": torch.full_like(outputs["exist_conf"], 0.2)}

    monkeypatch.setattr(SceneModelLightningModule, "loss_step", silent)
    cfg = tiny_cfg("train=false", "eval.untrained=true", "eval.submit_split=null")
    with caplog.at_level(logging.INFO):
        train(cfg)
    assert "the tracker wrote no box: no query reached eval.tracker.start_threshold=0.5 (the highest score was 0.20)" in caplog.text
    assert "boxes written 0 of" in caplog.text
    viz = Path(cfg.paths.output_dir) / "viz"
    for picture in (viz / "tracks" / "epoch_000.png", viz / "epoch_000.png"):
        image = np.asarray(Image.open(picture).convert("RGB"))
        assert tuple(image[1, 1].tolist()) == ALERT, picture  # the red caption band


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
    evaluator = TrackingEvaluator(TrackerOptions(), every, None, False, "tracking", 0, None, False)
    assert evaluator.should_run(trainer) is expected
    trainer.sanity_checking = True
    assert evaluator.should_run(trainer) is False


def test_validation_windows_that_share_no_frame_are_refused_before_training(tiny_cfg):
    with pytest.raises(ConfigError, match=r"data.val_stride=3; expected 1 <= val_stride < data.clip_len=3"):
        train(tiny_cfg("data.val_stride=3"))

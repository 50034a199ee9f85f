"""End-to-end: train(cfg) on the tiny synthetic data set, as train.py calls it."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from scene_model.runtime.run import train

LOSS_TAGS = ("total", "cls", "bbox", "giou", "exist")


def read_events(run_dir):
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


def test_fast_fit_writes_every_artifact_and_ends_with_its_result_and_where_it_is(tiny_cfg, caplog):
    cfg = tiny_cfg("trainer.max_epochs=2")
    with caplog.at_level(logging.INFO, logger="scene_model.runtime.run"):
        value = train(cfg)
    run = Path(cfg.paths.output_dir)
    said = [r.getMessage() for r in caplog.records if r.name == "scene_model.runtime.run"]
    assert re.fullmatch(r"val: HOTA \d+\.\d  DetA \d+\.\d  AssA \d+\.\d  IDF1 \d+\.\d", said[-4]), said
    assert said[-3:] == [
        f"run directory: {run}",
        f"checkpoint: {run / 'checkpoints' / 'last.ckpt'} (best val/loss/total: {next((run / 'checkpoints').glob('epoch_*.ckpt')).name})",
        f"tensorboard --logdir {run / 'tensorboard'}",
    ]
    assert value is not None and math.isfinite(value)
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert list((run / "checkpoints").glob("epoch_*.ckpt"))
    assert (run / "config_resolved.yaml").is_file()
    assert sorted(p.name for p in (run / "viz").glob("*.png")) == ["epoch_000.png", "epoch_001.png"]
    events = read_events(run)
    scalars = set(events.Tags()["scalars"])
    for stage in ("train", "val"):
        for term in LOSS_TAGS:
            assert any(tag.startswith(f"{stage}/loss/{term}") for tag in scalars), (stage, term, scalars)
    assert any(tag.startswith("lr-") for tag in scalars), scalars
    assert "val/predictions" in events.Tags()["images"]


def test_viz_max_frames_0_draws_no_picture(tiny_cfg):
    cfg = tiny_cfg("viz.max_frames=0")
    train(cfg)
    run = Path(cfg.paths.output_dir)
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert not list(run.glob("viz/**/*.png"))
    assert not read_events(run).Tags()["images"]


def test_checkpoint_loads_with_weights_only(tiny_cfg):
    cfg = tiny_cfg()
    train(cfg)
    ckpt = torch.load(f"{cfg.paths.output_dir}/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["config"]["model"]["num_queries"] == cfg.model.num_queries
    assert any(k.startswith("model.backbone.") for k in ckpt["state_dict"])


class RecordBackbone(Callback):
    """Records, per epoch, whether backbone parameters required grad and a copy of the weights."""

    def __init__(self):
        self.requires_grad, self.weights = {}, {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        params = list(pl_module.model.backbone.parameters())
        self.requires_grad.setdefault(trainer.current_epoch, {p.requires_grad for p in params})
        self.weights.setdefault(trainer.current_epoch, [p.detach().clone() for p in params])
        self.bn_training = pl_module.model.backbone.training

    def on_train_epoch_end(self, trainer, pl_module):
        self.weights[f"end{trainer.current_epoch}"] = [p.detach().clone() for p in pl_module.model.backbone.parameters()]


def test_backbone_frozen_until_unfreeze_after(tiny_cfg, monkeypatch):
    from scene_model.runtime import config_loader

    recorder = RecordBackbone()
    original = config_loader.ConfigLoader.build_callbacks
    monkeypatch.setattr(config_loader.ConfigLoader, "build_callbacks", lambda self: original(self) + [recorder])
    cfg = tiny_cfg("model.backbone.freeze=true", "model.backbone.unfreeze_after=1", "trainer.max_epochs=2",
                   "optimizer.weight_decay=0.1")
    train(cfg)
    assert recorder.requires_grad == {0: {False}, 1: {True}}
    same = [torch.equal(a, b) for a, b in zip(recorder.weights[0], recorder.weights["end0"], strict=True)]
    assert all(same), "frozen backbone weights changed in epoch 0"
    changed = [not torch.equal(a, b) for a, b in zip(recorder.weights[1], recorder.weights["end1"], strict=True)]
    assert any(changed), "backbone did not train after unfreezing"


class RecordMetrics(Callback):
    """What callback_metrics hold at the end of validation and of testing (in ``SEEN``)."""

    SEEN: dict = {}

    def on_validation_end(self, trainer, pl_module):
        self.SEEN["val/loss/total"] = float(trainer.callback_metrics["val/loss/total"])

    def on_test_end(self, trainer, pl_module):
        self.SEEN["after_test"] = set(trainer.callback_metrics)


def test_test_true_returns_the_metric_optimised_before_testing(tiny_cfg):
    """trainer.test starts callback_metrics afresh: the value returned is the val/ one read before it."""
    RecordMetrics.SEEN.clear()
    value = train(tiny_cfg("test=true", "+callbacks.record._target_=tests.test_train.RecordMetrics"))
    seen = RecordMetrics.SEEN
    assert value is not None and value == seen["val/loss/total"]
    assert "val/loss/total" not in seen["after_test"] and any(k.startswith("test/") for k in seen["after_test"])

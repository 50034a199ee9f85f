"""trainer.precision=auto: bf16-mixed where the machine runs bf16 natively, 32-true elsewhere (forced
here both ways), said once; checkpoints stay float32; tools predict in the machine's precision."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import yaml

from scene_model.runtime.checkpoints import load_checkpoint_file
from scene_model.runtime.config_loader import ConfigLoader
from scene_model.runtime.run import train
from scene_model.runtime.trained import load_trained
from scene_model.training import precision


@pytest.fixture(params=[True, False], ids=["bf16 machine", "no bf16"])
def native_bf16(request, monkeypatch) -> bool:
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: request.param)
    return request.param


def test_auto_resolves_to_the_machine_once_and_an_explicit_value_wins(tiny_cfg, native_bf16, caplog):
    cfg = tiny_cfg("trainer.precision=auto")
    with caplog.at_level(logging.INFO, logger=precision.__name__):
        loader = ConfigLoader(cfg)
        loader.build_trainer()
        ConfigLoader(cfg)
    expected = "bf16-mixed" if native_bf16 else "32-true"
    assert cfg.trainer.precision == expected
    said = [r.getMessage() for r in caplog.records if "trainer.precision=auto" in r.getMessage()]
    assert len(said) == 1 and expected in said[0] and "CPU" in said[0]
    assert loader.build_trainer().precision == expected
    explicit = tiny_cfg("trainer.precision=32-true")
    ConfigLoader(explicit)
    assert explicit.trainer.precision == "32-true"


def test_the_machine_precision_is_bf16_only_where_bf16_is_native(native_bf16):
    assert precision.machine_precision("cpu") == ("bf16-mixed" if native_bf16 else "32-true")
    assert precision.machine_precision("mps") == "32-true"
    assert precision.trainer_device_type("cpu") == "cpu" and precision.trainer_device_type("gpu") == "cuda"


@pytest.mark.slow
def test_the_default_fits_in_the_machine_precision_and_its_checkpoint_is_float32(tiny_cfg, native_bf16):
    cfg = tiny_cfg("trainer.precision=auto")
    assert train(cfg) is not None
    run = Path(cfg.paths.output_dir)
    expected = "bf16-mixed" if native_bf16 else "32-true"
    assert yaml.safe_load((run / "config_resolved.yaml").read_text())["trainer"]["precision"] == expected
    checkpoint = load_checkpoint_file(run / "checkpoints" / "last.ckpt")
    assert checkpoint["hyper_parameters"]["config"]["trainer"]["precision"] == expected
    assert {t.dtype for t in checkpoint["state_dict"].values() if t.is_floating_point()} == {torch.float32}
    # A tool predicts in the precision of the machine it runs on, whatever the checkpoint was trained in.
    trained = load_trained(run / "checkpoints" / "last.ckpt")
    trained.datamodule.setup("validate")
    batch = next(iter(trained.datamodule.val_dataloader()))
    outputs = trained.module.predict(batch)
    assert outputs["cls_logits"].dtype == (torch.bfloat16 if native_bf16 else torch.float32)

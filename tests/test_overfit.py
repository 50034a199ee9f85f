"""debug=overfit answers its question: the model fits one short sequence, and tracking that same
sequence scores high (the val split of the overfit config is its training split)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scene_model.runtime.run import train
from tests.conftest import compose_config


@pytest.mark.slow
def test_overfit_config_tracks_its_own_sequence(tmp_path):
    cfg = compose_config(
        ["debug=overfit", f"paths.data_dir={tmp_path / 'data'}", "optimized_metric=val/track/HOTA",
         "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"],
        tmp_path / "run",
    )
    assert cfg.data.val_split == cfg.data.train_split and cfg.data.max_interval == 1
    hota = train(cfg)
    split = cfg.data.val_split  # the training split: its metrics file is named after it
    metrics = json.loads((Path(cfg.paths.output_dir) / "tracking" / f"{split}_metrics.json").read_text())["combined"]
    assert hota is not None and hota >= 60, metrics
    assert metrics["DetA"] >= 60 and metrics["AssA"] >= 60, metrics

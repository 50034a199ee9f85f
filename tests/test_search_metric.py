"""What a run returns to a sweeper: the finite value of optimized_metric, or None (a failed trial)."""

from __future__ import annotations

import math

import pytest
import torch

from scene_model.training.run import optimized_value, train


@pytest.mark.parametrize(
    ("name", "metrics", "expected"),
    [
        ("val/total", {"val/total": torch.tensor(1.5)}, 1.5),
        ("val/HOTA", {"val/HOTA": 0.25, "val/total": torch.tensor(3.0)}, 0.25),
        ("val/total", {"val/total": torch.tensor(float("nan"))}, None),
        ("val/total", {"val/total": torch.tensor(float("inf"))}, None),
        ("val/HOTA", {"val/total": torch.tensor(1.0)}, None),
        (None, {"val/total": torch.tensor(1.0)}, None),
    ],
)
def test_optimized_value(name, metrics, expected):
    assert optimized_value(name, metrics) == expected


def test_missing_metric_is_named_with_what_was_logged(caplog):
    optimized_value("val/HOTA", {"val/total": torch.tensor(1.0)})
    assert "val/HOTA" in caplog.text and "val/total" in caplog.text


def test_diverged_run_returns_none_not_nan(tiny_cfg, caplog):
    """A NaN loss weight makes val/total NaN: the run returns None, which the Optuna sweeper records as failed."""
    assert train(tiny_cfg("train=false", "eval.untrained=true", "head.weights.exist=nan")) is None
    assert "diverged" in caplog.text
    value = train(tiny_cfg("train=false", "eval.untrained=true"))
    assert value is not None and math.isfinite(value)

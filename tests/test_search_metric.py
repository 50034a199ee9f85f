"""What a run returns to a sweeper: the finite value of optimized_metric, or None (a failed trial)."""

from __future__ import annotations

import math

import pytest
import torch

from scene_model.runtime.run import optimized_value, train


@pytest.mark.parametrize(
    ("name", "metrics", "expected"),
    [
        ("val/loss/total", {"val/loss/total": torch.tensor(1.5)}, 1.5),
        ("val/track/HOTA", {"val/track/HOTA": 0.25, "val/loss/total": torch.tensor(3.0)}, 0.25),
        ("val/loss/total", {"val/loss/total": torch.tensor(float("nan"))}, None),
        ("val/loss/total", {"val/loss/total": torch.tensor(float("inf"))}, None),
        ("val/track/HOTA", {"val/loss/total": torch.tensor(1.0)}, None),
        (None, {"val/loss/total": torch.tensor(1.0)}, None),
    ],
)
def test_optimized_value(name, metrics, expected):
    assert optimized_value(name, metrics) == expected


def test_missing_metric_is_named_with_what_was_logged(caplog):
    optimized_value("val/track/HOTA", {"val/loss/total": torch.tensor(1.0)})
    assert "val/track/HOTA" in caplog.text and "val/loss/total" in caplog.text


def test_diverged_run_returns_none_not_nan(tiny_cfg, caplog):
    """A NaN loss weight makes val/loss/total NaN: the run returns None, which the Optuna sweeper records as failed."""
    assert train(tiny_cfg("train=false", "eval.untrained=true", "head.weights.exist=nan")) is None
    assert "diverged" in caplog.text
    value = train(tiny_cfg("train=false", "eval.untrained=true"))
    assert value is not None and math.isfinite(value)

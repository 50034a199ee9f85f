"""The run's final metrics beside its hyperparameters, so that a sweep's runs compare at a glance.

At the end of a fit (and of an evaluate-only run) the last values of ``metrics`` (val/track/HOTA, DetA,
AssA, IDF1, val/loss/total by default) are logged as ``hparams/<name>`` to every logger. TensorBoard
also gets them as an HParams session with the run's hyperparameters (every plain value of the run
config outside ``exclude``), which its HParams tab lists one run a row; MLflow's run table shows
them with the parameters Lightning logged at the start.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_only


def flat_hparams(config: Mapping[str, Any], exclude: Sequence[str]) -> dict[str, Any]:
    """{'optimizer.lr': 0.0002, ...}: the plain values of ``config`` (lists as text), without the
    ``exclude`` top-level groups and the ``_target_``-like keys."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if not str(key).startswith("_") and not (not prefix and key in exclude):
                    walk(value, f"{prefix}{key}.")
        elif node is None or isinstance(node, bool | int | float | str):
            flat[prefix[:-1]] = "null" if node is None else node
        else:
            flat[prefix[:-1]] = str(node)

    walk(config, "")
    return flat


class HParamsSummary(L.Callback):
    def __init__(self, metrics: Sequence[str], exclude: Sequence[str]) -> None:
        self.metrics = tuple(metrics)
        self.exclude = tuple(exclude)

    def final_metrics(self, trainer: L.Trainer) -> dict[str, float]:
        found = {}
        for name in self.metrics:
            value = trainer.callback_metrics.get(name)
            if value is not None and math.isfinite(float(value)):
                found[f"hparams/{name.rsplit('/', 1)[-1]}"] = float(value)
        return found

    @rank_zero_only
    def record(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = self.final_metrics(trainer)
        if not metrics:
            return
        params = flat_hparams(pl_module.hparams.get("config") or {}, self.exclude)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.log_hyperparams(params, metrics, step=trainer.global_step)
            else:
                logger.log_metrics(metrics, step=trainer.global_step)
            logger.save()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.record(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:
            self.record(trainer, pl_module)

"""The way of one run: build everything from the config, fit, evaluate, return the optimised metric."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from scene_model.errors import SceneModelError
from scene_model.training.config_loader import ConfigLoader

log = logging.getLogger(__name__)


@rank_zero_only
def save_resolved_config(cfg: DictConfig, output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))


def train(cfg: DictConfig) -> float | None:
    """Fit (``train``), then evaluate (``test``); returns the value of ``optimized_metric``."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    loader = ConfigLoader(cfg)
    datamodule = loader.build_datamodule()
    module = loader.build_lit_module()
    trainer = loader.build_trainer(loader.build_callbacks(), loader.build_logger())
    save_resolved_config(cfg, Path(cfg.paths.output_dir))

    ckpt_path = cfg.get("ckpt_path")
    if cfg.get("train", True):
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        ckpt_path = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else None
        ckpt_path = ckpt_path or None
    else:
        # Evaluate only: val losses, and through TrackingEvaluator the val split tracked and scored
        # (val/HOTA, ...) and eval.submit_split written for submission.
        if not ckpt_path:
            log.warning("train=false without ckpt_path: evaluating an untrained model")
        trainer.validate(module, datamodule=datamodule, ckpt_path=ckpt_path)
    if cfg.get("test", False):
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path)

    return optimized_value(cfg.get("optimized_metric"), trainer.callback_metrics)


def optimized_value(metric_name: str | None, metrics: dict) -> float | None:
    """The finite value of ``metric_name``, else None: a sweeper records a trial without one as failed.

    None rather than NaN: hydra-optuna-sweeper 1.3 aborts the whole search on a NaN return value (its
    ``study.tell`` rejects NaN, then the failure record is told the NaN again), and records None as failed.
    """
    if not metric_name:
        return None
    if metric_name not in metrics:
        log.warning(f"optimized_metric {metric_name!r} was not logged; logged: {sorted(metrics)}")
        return None
    value = float(metrics[metric_name])
    log.info(f"{metric_name} = {value:.6g}")
    if not math.isfinite(value):
        log.warning(f"optimized_metric {metric_name!r} is {value}: the run diverged")
        return None
    return value


def main(cfg: DictConfig) -> float | None:
    """Entry point body: a user-fixable error is printed as one message, without a traceback.

    In a sweep every error is raised on to the sweeper (which records the job as failed and, for a
    search, goes on); the job's log keeps the traceback of an unexpected one.
    """
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        return train(cfg)
    except SceneModelError as err:
        log.error(f"{type(err).__name__}: {err}")
        if multirun:
            raise
        raise SystemExit(1) from None
    except Exception:
        if multirun:
            log.exception("The run failed")
        raise

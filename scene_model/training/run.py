"""The way of one run: build everything from the config, fit, evaluate, return the optimised metric."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from scene_model.errors import ConfigError, SceneModelError
from scene_model.training.config_loader import ConfigLoader
from scene_model.training.slurm import cluster_plugins, resume_ckpt_path

log = logging.getLogger(__name__)


@rank_zero_only
def save_resolved_config(cfg: DictConfig, output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))


def multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def check_launch(trainer: L.Trainer) -> None:
    """Refuse what fails later in confusing ways: Lightning re-running this script per device
    inside a local sweep (each copy would run the whole sweep again)."""
    launcher = trainer.strategy.launcher
    environment = getattr(trainer.strategy, "cluster_environment", None)
    reruns_script = (
        isinstance(launcher, _SubprocessScriptLauncher)
        and trainer.num_devices > 1
        and not (environment is not None and environment.creates_processes_externally)
    )
    if multirun() and reruns_script:
        raise ConfigError(
            "trainer.strategy=ddp with several devices re-runs train.py per device, which a local sweep (-m) "
            "does not support; use trainer.strategy=ddp_spawn, or hydra/launcher=slurm (one task per device)"
        )


def train(cfg: DictConfig) -> float | None:
    """Fit (``train``), then evaluate (``test``); returns the value of ``optimized_metric``."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    loader = ConfigLoader(cfg)
    datamodule = loader.build_datamodule()
    module = loader.build_lit_module()
    trainer = loader.build_trainer(loader.build_callbacks(), loader.build_logger(), plugins=cluster_plugins())
    check_launch(trainer)
    save_resolved_config(cfg, Path(cfg.paths.output_dir))

    ckpt_path = cfg.get("ckpt_path")
    if cfg.get("train", True):
        ckpt_path = resume_ckpt_path(ckpt_path, trainer.checkpoint_callback)
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
    try:
        return train(cfg)
    except SceneModelError as err:
        log.error(f"{type(err).__name__}: {err}")
        if multirun():
            raise  # let the sweeper record the failed job
        raise SystemExit(1) from None
    except Exception:
        if multirun():
            log.exception("The run failed")
        raise

"""The way of one run: build everything from the config, fit, evaluate, return the optimised metric."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from scene_model.errors import ConfigError, SceneModelError
from scene_model.training.config_loader import ConfigLoader
from scene_model.training.config_validation import validate_config

log = logging.getLogger(__name__)


@rank_zero_only
def save_resolved_config(cfg: DictConfig, output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))


def refuse_to_overwrite(trainer: L.Trainer, ckpt_path: str | None) -> None:
    """A fresh fit must not write over the checkpoints of an earlier run in the same directory."""
    if ckpt_path:
        return
    for callback in trainer.checkpoint_callbacks:
        directory = Path(callback.dirpath) if getattr(callback, "dirpath", None) else None
        if directory is not None and directory.is_dir() and any(directory.glob("*.ckpt")):
            raise ConfigError(
                f"{directory} already holds checkpoints of an earlier run: resume it with ckpt_path=last, "
                "or start a new run in another directory (leave hydra.run.dir at its default)"
            )


def train(cfg: DictConfig) -> float | None:
    """Fit (``train``), then evaluate (``test``); returns the value of ``optimized_metric``."""
    validate_config(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    loader = ConfigLoader(cfg)
    datamodule = loader.build_datamodule()
    module = loader.build_lit_module()
    trainer = loader.build_trainer(loader.build_callbacks(), loader.build_logger())
    ckpt_path = cfg.get("ckpt_path")
    if cfg.get("train", True):
        refuse_to_overwrite(trainer, ckpt_path)
    save_resolved_config(cfg, Path(cfg.paths.output_dir))

    if cfg.get("train", True):
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        ckpt_path = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else None
        ckpt_path = ckpt_path or None
    else:
        trainer.validate(module, datamodule=datamodule, ckpt_path=ckpt_path)
    if cfg.get("test", False):
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path)

    metric_name = cfg.get("optimized_metric")
    value = trainer.callback_metrics.get(metric_name) if metric_name else None
    if value is None:
        return None
    value = float(value)
    log.info(f"{metric_name} = {value:.6g}")
    return value if math.isfinite(value) else float("nan")


def user_error(err: BaseException) -> SceneModelError | None:
    """The user-fixable error behind ``err``: itself, or the one a constructor raised inside
    ``hydra.utils.instantiate``; None for anything else (a bug: keep its traceback)."""
    if isinstance(err, SceneModelError):
        return err
    if isinstance(err, InstantiationException) and isinstance(err.__cause__, SceneModelError):
        return err.__cause__
    return None


def one_line(err: SceneModelError) -> str:
    """The message of ``err`` without the worker traceback that torch's DataLoader puts into it."""
    text = str(err)
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = text.strip().splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return f"{type(err).__name__}: {text}"


def main(cfg: DictConfig) -> float | None:
    """Entry point body: a user-fixable error is printed as one message, without a traceback."""
    try:
        return train(cfg)
    except Exception as err:
        found = user_error(err)
        if found is None:
            raise
        log.error(one_line(found))
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # let the sweeper record the failed job
        raise SystemExit(1) from None

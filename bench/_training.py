"""Building blocks of the training benchmarks: the run's config and components, cached batches, and
a plain PyTorch loop over the same model, optimiser, scheduler and gradient clipping."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from scene_model.data.types import SceneBatch
from scene_model.runtime.config_loader import ConfigLoader
from scene_model.runtime.config_validation import validate_config
from scene_model.training.lit_module import SceneModelLightningModule
from scene_model.training.precision import resolve_precision

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def run_config(overrides: Sequence[str], output_dir: Path) -> DictConfig:
    """conf/train.yaml composed as ``python train.py`` composes it, writing under ``output_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"paths.output_dir={output_dir}", *overrides])
    validate_config(cfg)
    resolve_precision(cfg)
    return cfg


def cached_batches(cfg: DictConfig, count: int) -> list[SceneBatch]:
    """``count`` training batches of the run's data module, loaded and collated once."""
    data = ConfigLoader(cfg).build_datamodule()
    data.prepare_data()
    data.setup("fit")
    batches: list[SceneBatch] = []
    while len(batches) < count:
        for batch in data.train_dataloader():
            batches.append(batch)
            if len(batches) == count:
                break
    return batches


class CachedData(L.LightningDataModule):
    """Feeds Lightning an iterable (no loading cost), moving batches as DancetrackDataModule does."""

    def __init__(self, batches: object) -> None:
        super().__init__()
        self.batches = batches

    def train_dataloader(self) -> object:
        return self.batches

    def transfer_batch_to_device(self, batch: SceneBatch, device: torch.device, dataloader_idx: int) -> SceneBatch:
        return batch.to(device, non_blocking=True)


class PlainLoop:
    """One training step of ``module``'s model in plain PyTorch: the module's own ``loss_step`` (forward and
    loss, under bf16 autocast when the run's ``trainer.precision`` is bf16-mixed, as Lightning runs it),
    backward, the run's gradient clipping, optimiser and scheduler step. No logging, no callbacks."""

    def __init__(self, module: SceneModelLightningModule, cfg: DictConfig, total_steps: int) -> None:
        self.module = copy.deepcopy(module)
        self.module.train()
        self.optimizer = self.module.optimizer_factory(params=self.module.parameter_groups())
        factory = self.module.scheduler_factory
        self.scheduler = factory(self.optimizer, total_steps=total_steps) if factory is not None else None
        self.clip = cfg.trainer.get("gradient_clip_val")
        self.clip_algorithm = cfg.trainer.get("gradient_clip_algorithm") or "norm"
        self.bf16 = str(cfg.trainer.precision) == "bf16-mixed"

    def step(self, batch: SceneBatch) -> torch.Tensor:
        with torch.autocast(batch.frames.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            loss = self.module.loss_step(batch, train=True)[0]["total"]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip:
            params = [p for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]
            if self.clip_algorithm == "value":
                torch.nn.utils.clip_grad_value_(params, self.clip)
            else:
                torch.nn.utils.clip_grad_norm_(params, self.clip)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return loss.detach()


def lightning_trainer(cfg: DictConfig, max_steps: int, extra_callbacks: Sequence[L.Callback] = ()) -> L.Trainer:
    """The run's Trainer, with its callbacks and loggers, built as run.train builds it; one epoch of
    ``max_steps`` steps without validation (the benchmarks time training steps)."""
    loader = ConfigLoader(cfg)
    trainer_cfg = cfg.trainer
    trainer_cfg.max_steps, trainer_cfg.max_epochs = max_steps, 1
    trainer_cfg.limit_val_batches, trainer_cfg.num_sanity_val_steps = 0, 0
    return loader.build_trainer(loader.build_callbacks() + list(extra_callbacks), loader.build_logger())


class StepTimer(L.Callback):
    """Seconds of every training step, from one batch start to the next (so a step includes every
    hook, callback, logger and progress bar update Lightning runs for it)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start: float | None = None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: object, batch_idx: int) -> None:
        now = time.perf_counter()
        if self._start is not None:
            self.seconds.append(now - self._start)
        self._start = now


class Cycle:
    """``count`` batches taken in turn from ``batches``: a plain iterable (Lightning would take a list
    for several data loaders)."""

    def __init__(self, batches: Sequence[SceneBatch], count: int) -> None:
        self.batches, self.count = batches, count

    def __iter__(self) -> Iterator[SceneBatch]:
        return (self.batches[i % len(self.batches)] for i in range(self.count))

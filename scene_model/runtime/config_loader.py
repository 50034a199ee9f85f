"""ConfigLoader: builds every component of a run from the composed Hydra config."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, ProgressBar
from lightning.pytorch.loggers import Logger
from lightning.pytorch.plugins.io import CheckpointIO
from omegaconf import DictConfig, OmegaConf
from torch.optim import Optimizer

from scene_model.runtime.checkpoints import AtomicCheckpointIO
from scene_model.training.lit_module import SceneModelLightningModule
from scene_model.training.precision import resolve_precision

log = logging.getLogger(__name__)


class ConfigLoader:
    """Each ``build_*`` instantiates one config group from its ``_target_``. ``trainer.precision: auto``
    is resolved in ``cfg`` first, once (``training.precision``): everything built, and the run config
    the checkpoints keep, see the precision the run computes in."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        resolve_precision(cfg)

    def build_datamodule(self) -> L.LightningDataModule:
        """The ``data`` group; its training samples are chains of the association's ``chain_len`` windows."""
        return instantiate(self.cfg.data, chain_len=self.chain_len())

    def chain_len(self) -> int:
        """Windows per training sample: the association's (``association.chain_len``; 1 without one)."""
        return int(OmegaConf.select(self.cfg, "association.chain_len", default=1) or 1)

    def build_lit_module(self) -> SceneModelLightningModule:
        """The ``module`` group, given the objects of the ``model``, ``association``, ``head``, ``optimizer``
        and ``scheduler`` groups and the resolved run config (its one hyperparameter)."""
        cfg = self.cfg
        return instantiate(
            cfg.module,
            _recursive_=False,  # the run config passed along holds _target_ nodes: they stay data
            _convert_="all",  # ... as plain dicts (a checkpoint loads with weights_only)
            model=instantiate(cfg.model),
            association=instantiate(cfg.association),
            head_adapter=instantiate(cfg.head),
            optimizer=self.build_optimizer_factory(),
            scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
            run_config=self.resolved_config(),
        )

    def build_optimizer_factory(self) -> Callable[..., Optimizer]:
        """The ``optimizer`` partial; ``fused`` is turned off under mixed precision with gradient clipping,
        which Lightning's mixed-precision plugin refuses for fused optimisers."""
        factory = instantiate(self.cfg.optimizer)
        trainer = self.cfg.trainer
        mixed = str(trainer.get("precision")).endswith("-mixed")
        if isinstance(factory, partial) and factory.keywords.get("fused") and mixed and trainer.get("gradient_clip_val"):
            log.info(f"optimizer.fused=false: trainer.precision={trainer.precision} cannot clip a fused optimizer's gradients")
            factory = partial(factory.func, *factory.args, **{**factory.keywords, "fused": False})
        return factory

    def build_logger(self) -> list[Logger]:
        return [instantiate(c) for c in (self.cfg.get("logger") or {}).values() if c and "_target_" in c]

    def build_callbacks(self) -> list[Callback]:
        """The ``callbacks`` group; a configured progress bar is left out when ``trainer.enable_progress_bar`` is
        false, and put first otherwise: when a fit stops on an exception its bar is closed before the other
        callbacks log (``callbacks.ProgressBarClosedOnStop``)."""
        callbacks = [instantiate(c) for c in (self.cfg.get("callbacks") or {}).values() if c and "_target_" in c]
        if not self.cfg.trainer.get("enable_progress_bar", True):
            callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
        return sorted(callbacks, key=lambda c: not isinstance(c, ProgressBar))

    def build_trainer(
        self, callbacks: list[Callback] | None = None, loggers: list[Logger] | None = None, plugins: list | None = None
    ) -> L.Trainer:
        """``plugins`` (e.g. the SLURM environment) come on top of ``build_plugins``'s."""
        return instantiate(
            self.cfg.trainer, callbacks=callbacks or [], logger=loggers or False,
            plugins=self.build_plugins() + list(plugins or []),
        )

    def build_plugins(self) -> list[Any]:
        """``trainer.plugins``, with AtomicCheckpointIO unless a CheckpointIO is configured there."""
        configured = instantiate(self.cfg.trainer.get("plugins")) or []
        plugins = list(configured) if isinstance(configured, list | tuple) else [configured]
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            plugins.append(AtomicCheckpointIO())
        return plugins

    def resolved_config(self) -> dict[str, Any]:
        """The run config as plain Python values (what checkpoints keep as hyperparameters)."""
        return OmegaConf.to_container(self.cfg, resolve=True)

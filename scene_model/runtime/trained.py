"""A trained model from a checkpoint, ready to predict: the one way the project loads one for inference.

``train=false`` runs, ``python -m scene_model.tools.track``, the threshold sweep and the many-seed
benchmark all load through ``load_trained`` (or, with a run config of their own, ``training.weights.restore_weights``):
the checkpoint is read with ``weights_only``, its run config is checked, the model is built from it
eagerly (no ``torch.compile``), the weights must fit it (``check_fits`` names what differs) and the
module is put in eval mode.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from scene_model.data.datamodule import DancetrackDataModule
from scene_model.errors import CheckpointError
from scene_model.runtime.checkpoints import load_checkpoint_file
from scene_model.runtime.config_loader import ConfigLoader
from scene_model.training.lit_module import SceneModelLightningModule
from scene_model.training.weights import restore_weights

RUN_GROUPS = ("model", "module", "data", "eval")


@dataclass
class TrainedRun:
    """A checkpoint's model (eval mode, on its device), its data module and its run config."""

    module: SceneModelLightningModule
    datamodule: DancetrackDataModule
    cfg: DictConfig
    path: Path


def run_config(checkpoint: dict[str, Any], path: str | os.PathLike) -> DictConfig:
    """The run config a checkpoint of train.py keeps as its hyperparameter, with compilation off."""
    config = (checkpoint.get("hyper_parameters") or {}).get("config")
    if not isinstance(config, dict) or not set(RUN_GROUPS) <= set(config):
        raise CheckpointError(
            f"checkpoint {path} was not written by this version of train.py: it holds no run config "
            f"(hyper_parameters.config with {', '.join(RUN_GROUPS)})"
        )
    cfg = OmegaConf.create(config)
    with open_dict(cfg):
        cfg.module.compile = False  # inference runs the model eagerly
    return cfg


def load_trained(path: str | os.PathLike, device: str = "cpu", given_as: str = "ckpt_path") -> TrainedRun:
    """The model of checkpoint ``path`` in eval mode on ``device``, with its run's data module and config
    (``given_as``: where the user gave ``path``, named when it is missing or unreadable)."""
    checkpoint = load_checkpoint_file(path, given_as=given_as)
    cfg = run_config(checkpoint, path)
    loader = ConfigLoader(cfg)
    try:
        module = loader.build_lit_module()
        datamodule = loader.build_datamodule()
    except Exception as err:
        raise CheckpointError(f"checkpoint {path}: its run config does not build a SceneModel here ({err})") from None
    restore_weights(module, checkpoint, path)
    return TrainedRun(module.to(device).eval(), datamodule, cfg, Path(path))

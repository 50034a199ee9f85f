"""The run config as ``train.py`` composes it (conf/train.yaml), for tools that start without a checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

import scene_model.tracking.options  # noqa: F401  (registers eval/tracker/default with Hydra)

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def compose_run_config(overrides: Sequence[str] = (), return_hydra_config: bool = False) -> DictConfig:
    """conf/train.yaml composed with Hydra ``overrides`` (``key=value``, ``group=option``)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=return_hydra_config)


def use_data_on_disk(cfg: DictConfig, root: str | Path) -> None:
    """Point ``cfg.data`` at the data set at ``root`` as it is: nothing generated, no extra synthetic
    train sets (which a run config trained on the synthetic data adds by default)."""
    with open_dict(cfg):
        cfg.data.root, cfg.data.synthetic, cfg.data.extra_train_sets = str(root), None, 0

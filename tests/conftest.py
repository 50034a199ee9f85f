"""Shared fixtures: a tiny synthetic data set (generated once per session) and composed configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from scene_model.data.synthetic import SyntheticSpec, ensure_synthetic
from scene_model.tools.compose import compose_run_config
from tests.builders import synthetic_spec

REPO = Path(__file__).resolve().parents[1]
pytest_plugins = ["tests.slurm.plugin"]  # --slurm, the slurm marker and the slurm_cluster fixture

TINY_SYNTHETIC = dict(num_train=2, num_val=1, num_test=1, num_frames=16, sizes=[[192, 108], [160, 90]], seed=3)

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "tiny"
    return ensure_synthetic(root, SyntheticSpec.from_dict(synthetic_spec(**TINY_SYNTHETIC)))


def tiny_overrides(root: Path) -> list[str]:
    """Overrides that shrink the default run to seconds on a CPU."""
    sizes = ",".join(f"[{w},{h}]" for w, h in TINY_SYNTHETIC["sizes"])
    synthetic = ",".join(f"{k}:{v}" for k, v in TINY_SYNTHETIC.items() if k != "sizes")
    return [
        f"data.root={root}",
        f"data.synthetic={{{synthetic},sizes:[{sizes}]}}",
        "data.num_workers=0",
        "data.extra_train_sets=0",
        "data.train_stride=3",
        "data.clip_len=3",
        "data.train_sizes=[64]",
        "data.eval_size=64",
        "model.d_model=32",
        "model.dim_feedforward=64",
        "model.num_encoder_layers=1",
        "model.num_decoder_layers=2",
        "model.num_queries=8",
        "trainer.accelerator=cpu",
        "trainer.precision=32-true",  # the same arithmetic on every machine (trainer.precision=auto: tests/test_precision.py)
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.num_sanity_val_steps=0",
        "trainer.log_every_n_steps=1",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]


def compose_config(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    """Compose conf/train.yaml as train.py would, with the run directory set to ``output_dir``."""
    cfg = compose_run_config(overrides, return_hydra_config=True)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
            cfg.paths.log_dir = str(output_dir)
            cfg.hydra.runtime.output_dir = str(output_dir)
            cfg.hydra.job.num = 0
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
    return cfg


@pytest.fixture
def tiny_cfg(tiny_root, tmp_path):
    """A factory: tiny_cfg(*extra_overrides) -> composed config writing under tmp_path."""

    def make(*extra: str) -> DictConfig:
        return compose_config(tiny_overrides(tiny_root) + list(extra), tmp_path / "run")

    return make

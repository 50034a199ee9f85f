"""Every config group composes, and what it selects can be built."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.conftest import CONF_DIR, compose_config

GROUP_OPTIONS = {
    group: sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
    for group in ("data", "model", "model/backbone", "head", "optimizer", "scheduler", "trainer", "logger",
                  "callbacks", "paths", "experiment", "debug")
}
EXTRA = {"data": ["data.root=/tmp/anywhere"], "experiment": ["data.root=/tmp/anywhere"]}


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g, options in GROUP_OPTIONS.items() for o in options]
)
def test_every_group_option_composes_and_resolves(group, option, tmp_path):
    cfg = compose_config([f"{group}={option}", *EXTRA.get(group.split("/")[0], [])], tmp_path)
    OmegaConf.resolve(cfg)
    for key in ("seed", "train", "test", "ckpt_path", "optimized_metric", "viz.max_frames",
                "model.backbone.freeze", "model.backbone.unfreeze_after"):
        assert OmegaConf.select(cfg, key, throw_on_missing=False) is not None or key == "ckpt_path", key


def test_defaults_build_optimizer_and_scheduler(tmp_path):
    import torch

    cfg = compose_config([], tmp_path)
    params = [torch.nn.Parameter(torch.zeros(2))]
    optimizer = instantiate(cfg.optimizer)(params=params)
    scheduler = instantiate(cfg.scheduler)(optimizer, total_steps=100)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(cfg.optimizer.lr / cfg.scheduler.warmup_steps)
    for _ in range(100):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(cfg.optimizer.lr * cfg.scheduler.min_lr_ratio, rel=0.05)


def test_dancetrack_requires_root(tmp_path):
    from omegaconf.errors import MissingMandatoryValue

    cfg = compose_config(["data=dancetrack"], tmp_path)
    with pytest.raises(MissingMandatoryValue, match="root"):
        _ = cfg.data.root


def test_unknown_key_is_refused_with_its_name(tmp_path):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="optimizer.lrr"):
        compose_config(["optimizer.lrr=1"], tmp_path)


def test_experiment_overrides_groups(tmp_path):
    cfg = compose_config(["experiment=dancetrack_r50", "data.root=/datasets/DanceTrack"], tmp_path)
    assert cfg.model.backbone.name == "resnet50"
    assert cfg.model.backbone.weights == "IMAGENET1K_V2"
    assert cfg.data.synthetic is None
    assert cfg.trainer.precision == "bf16-mixed"

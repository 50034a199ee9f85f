"""Every config group composes, and what it selects can be built."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from scene_model.tools.compose import CONF_DIR
from tests.conftest import compose_config

GROUP_OPTIONS = {
    group: sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
    for group in ("data", "model", "model/backbone", "association", "module", "head", "optimizer", "scheduler", "trainer", "logger",
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


# Arguments the config cannot hold: objects of other groups, given when the object is built.
BUILT_WITH = {
    "scene_model.training.lit_module.SceneModelLightningModule": {"model", "association", "head_adapter", "optimizer", "scheduler", "run_config"},
    "scene_model.data.DancetrackDataModule": {"chain_len"},  # the association's
    "scene_model.training.schedules.cosine_with_warmup": {"optimizer", "total_steps"},  # _partial_: completed by the module
    "scene_model.training.schedules.step_decay": {"optimizer", "total_steps"},
}


def own_target_nodes(node, path=""):
    """(key, node) of every ``_target_`` node of the config whose object's constructor is the project's own."""
    import inspect

    from hydra.utils import get_object

    if isinstance(node, DictConfig):
        target = node.get("_target_")
        if target is not None:
            obj = get_object(str(target))
            init = obj.__init__ if inspect.isclass(obj) else obj
            if getattr(init, "__module__", "").startswith("scene_model"):
                yield path, node
        for key in node:
            yield from own_target_nodes(node[key], f"{path}.{key}" if path else str(key))


@pytest.mark.parametrize(
    "overrides",
    [[], ["data=dancetrack", "data.root=/tmp/anywhere", "model/backbone=resnet50"], ["model/backbone=resnet34"],
     ["logger=many"], ["scheduler=step"]],
)
def test_every_object_built_from_the_config_mirrors_its_node_and_holds_no_default(overrides, tmp_path):
    """Each node of the project's own objects (data, model, module, head, callbacks, schedules, loggers ...)
    names exactly its object's parameters, and none of those has a default in Python: the config is the
    one place a default is written."""
    import inspect

    from hydra.utils import get_object

    cfg = compose_config(overrides, tmp_path)
    checked = []
    for key, node in own_target_nodes(cfg):
        target = str(node["_target_"])
        parameters = dict(inspect.signature(get_object(target)).parameters)
        forwards = any(p.kind is p.VAR_KEYWORD for p in parameters.values())  # a factory passing the rest on
        parameters = {k: p for k, p in parameters.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        keys = {k for k in node if not str(k).startswith("_")}
        assert forwards or keys <= set(parameters), (key, keys - set(parameters))
        assert set(parameters) <= keys | BUILT_WITH.get(target, set()), (key, set(parameters) - keys)
        keys &= set(parameters)
        defaults = [k for k in keys if parameters[k].default is not inspect.Parameter.empty]
        assert not defaults, f"{key}: {defaults} have a default in Python as well as in the config"
        checked.append(key)
    assert {"data", "model", "model.backbone", "module", "head", "head.matcher", "callbacks.tracking"} <= set(checked)


def test_objects_the_data_module_builds_from_its_config_take_every_value_from_it():
    """ClipTransform and ClipDataset are built from data.* inside the data module: no value of theirs
    has a default of its own that could contradict the config."""
    import inspect

    from scene_model.data.dataset import ClipDataset
    from scene_model.data.transforms import ClipTransform

    for built in (ClipTransform, ClipDataset):
        defaults = [name for name, p in inspect.signature(built).parameters.items() if p.default is not inspect.Parameter.empty]
        assert not defaults, f"{built.__name__}: {defaults}"


def test_an_unknown_key_added_to_a_group_is_named(tmp_path):
    from scene_model.errors import ConfigError
    from scene_model.runtime.config_validation import validate_config

    cfg = compose_config(["+model.box_size=3", "+data.shuffle=true"], tmp_path)
    with pytest.raises(ConfigError, match=r"model.box_size: scene_model.models.SceneModel takes no argument 'box_size'"):
        validate_config(cfg)

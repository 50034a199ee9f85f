"""Config mistakes: each is one explanation naming the key, before anything is built."""

from __future__ import annotations

import pytest

from scene_model.errors import ConfigError
from scene_model.runtime.config_validation import validate_config
from scene_model.runtime.run import train
from tests.conftest import compose_config
from tests.test_cli import run_train
from tests.test_configs import EXTRA, GROUP_OPTIONS


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optimizer.lr=fast"], r"^optimizer\.lr: expected float \| Tensor, got 'fast' \(str\)$"),
        (["trainer.max_epochs=abc"], r"^trainer\.max_epochs: expected int \| None, got 'abc'"),
        (["trainer.precision=fp32"], r"^trainer\.precision: expected 'auto' or one of .*'bf16-mixed'.*got 'fp32'"),
        (["data.batch_size=two"], r"^data\.batch_size: expected int, got 'two'"),
        (["data.clip_len=4.5"], r"^data\.clip_len: expected int, got 4\.5 \(float\)"),
        (["model.num_queries=ten"], r"^model\.num_queries: expected int, got 'ten'"),
        (["data.train_sizes=[608,640,big]"], r"^data\.train_sizes: expected Sequence\[int\], got \[608, 640, 'big'\]"),
        (["train=no"], r"^train: expected bool, got 'no'"),  # a string that would otherwise count as true
        (["seed=abc"], r"^seed: expected int \| None"),
        (["model.backbone.freeze=maybe"], r"^model\.backbone\.freeze: expected bool, got 'maybe' \(str\)$"),
        (["module.channels_last=fast"], r"^module\.channels_last: expected bool, got 'fast' \(str\)$"),
        (["association=id_decoder", "association.occlusion=1.5"], r"^association\.occlusion: 1\.5 is out of range, expected 0\.\.1$"),
        (["association=embeddings", "association.link_dim=0"], r"^association\.link_dim: 0 is out of range, expected >= 1$"),
        (["module.compile=sometimes"], r"^module\.compile: expected bool, got 'sometimes' \(str\)$"),
        (["training.max_bad_steps=0"], r"^training\.max_bad_steps: 0 is out of range, expected >= 1$"),
        (["optimizer.lr=-1"], r"^optimizer\.lr: -1 is out of range, expected > 0$"),
        (["data.clip_len=0"], r"^data\.clip_len: 0 is out of range, expected >= 1$"),
        (["data.batch_size=0"], r"^data\.batch_size: 0 is out of range, expected >= 1$"),
        (["model.num_queries=0"], r"^model\.num_queries: 0 is out of range, expected >= 1$"),
        (["data.train_sizes=[640,0]"], r"^data\.train_sizes: \[640, 0\] is out of range, expected each >= 1$"),
        (["data.hue=0.7"], r"^data\.hue: 0\.7 is out of range, expected 0\.\.0\.5$"),
        (["model.dropout=1.5"], r"^model\.dropout: 1\.5 is out of range, expected 0\.\.1$"),
        (["optimizer=sgd", "optimizer.momentum=-0.5"], r"^optimizer\.momentum: -0\.5 is out of range, expected 0\.\.1$"),
        (["seed=-1"], r"^seed: -1 is out of range, expected 0\.\.4294967295$"),
        (["model.backbone.freeze=true", "model.backbone.unfreeze_after=-2"],
         r"^model\.backbone\.unfreeze_after: -2 is out of range"),  # checked where the user typed it
        (["training.checkpoint_every_n_steps=often"], r"^training\.checkpoint_every_n_steps: expected int"),
        (["+trainer.max_epoch=3"], r"^trainer\.max_epoch: lightning\.pytorch\.Trainer takes no argument 'max_epoch'$"),
        (["data=dancetrack"], r"^missing required value\(s\): data\.root; set them on the command line \(data\.root=\.\.\.\)$"),
    ],
)
def test_config_mistake_is_one_line_naming_the_key(overrides, message, tmp_path):
    with pytest.raises(ConfigError, match=message) as caught:
        validate_config(compose_config(overrides, tmp_path))
    assert "\n" not in str(caught.value)


def test_train_false_without_a_checkpoint_is_refused(tmp_path):
    cfg = compose_config(["train=false"], tmp_path)
    with pytest.raises(ConfigError, match=r"^ckpt_path: train=false evaluates a checkpoint and none was given; add "):
        train(cfg)
    assert not (tmp_path / "config_resolved.yaml").exists()  # refused before anything is built or written


def test_an_interpolation_to_nowhere_names_the_key(tmp_path):
    cfg = compose_config([], tmp_path)
    cfg.data.root = "${paths.nowhere}"
    with pytest.raises(ConfigError, match=r"^data\.root: Interpolation key 'paths\.nowhere' not found$"):
        validate_config(cfg)


def test_every_problem_is_reported_at_once(tmp_path):
    with pytest.raises(ConfigError) as caught:
        validate_config(compose_config(["optimizer.lr=fast", "data.batch_size=two"], tmp_path))
    assert "optimizer.lr:" in str(caught.value) and "data.batch_size:" in str(caught.value)


@pytest.mark.parametrize(("group", "option"), [(g, o) for g, options in GROUP_OPTIONS.items() for o in options])
def test_every_shipped_config_is_valid(group, option, tmp_path):
    validate_config(compose_config([f"{group}={option}", *EXTRA.get(group.split("/")[0], [])], tmp_path))


def test_gradient_clipping_and_step_checkpoints_are_on_by_default(tmp_path):
    cfg = compose_config([], tmp_path)
    assert cfg.trainer.gradient_clip_val > 0
    assert cfg.callbacks.step_checkpoint.every_n_train_steps == cfg.training.checkpoint_every_n_steps > 0
    assert cfg.callbacks.skip_non_finite.max_bad_steps == cfg.training.max_bad_steps


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("optimizer.lrr=1", "Key 'lrr' is not in struct"),  # Hydra's own refusal of an unknown key
        ("trainer.max_epochs=abc", "ConfigError: trainer.max_epochs: expected int | None, got 'abc' (str)"),
        ("data=dancetrack", "ConfigError: missing required value(s): data.root"),
        ("optimizer.lr=-1", "ConfigError: optimizer.lr: -1 is out of range, expected > 0"),
        ("train=false", "ConfigError: ckpt_path: train=false evaluates a checkpoint"),
    ],
)
def test_train_py_explains_a_config_mistake_in_one_line(override, expected, tmp_path):
    result = run_train(override, f"hydra.run.dir={tmp_path}/run")  # refused before any data is read
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert expected in output and "Traceback" not in output, output[-3000:]
    assert not (tmp_path / "run" / "config_resolved.yaml").exists()
    if expected.startswith("ConfigError"):
        assert expected in (tmp_path / "run" / "train.log").read_text()  # the run's log says it too

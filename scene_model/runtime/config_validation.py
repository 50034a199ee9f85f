"""Config mistakes found before anything is built, each reported with the key that holds it.

Hydra already refuses unknown keys. Here: required values left at ``???``, interpolations that do
not resolve, values of the wrong type, and numbers outside their range (``KEY_RANGES``; the tracker's
options are ``TrackerOptions``'s, checked by it). Types come from two places: the signature of the object
a node builds (its ``_target_``: Trainer, optimiser, DataModule, model, callbacks, loggers ...), and
``KEY_TYPES`` below for keys our own code reads.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from typing import Any

from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from typeguard import CollectionCheckStrategy, TypeCheckError, check_type

from scene_model.data.datamodule import extra_sets_problem
from scene_model.errors import ConfigError
from scene_model.tracking.options import TrackerOptions
from scene_model.training.precision import AUTO

KEY_TYPES: dict[str, Any] = {
    "seed": int | None,
    "train": bool,
    "test": bool,
    "ckpt_path": str | None,
    "optimized_metric": str | None,
    "viz.max_frames": int,
    "viz.score_threshold": float,
    "training.max_bad_steps": int,
    "training.checkpoint_every_n_steps": int,
    "training.num_threads": int | None,
}
# Numeric keys and the range their values must lie in: "> 0", ">= 1", "0..1" (both ends included).
# A list value (data.train_sizes) is checked item by item; None (where a key allows it) passes.
KEY_RANGES: dict[str, str] = {
    "seed": f"0..{2**32 - 1}",
    "training.max_bad_steps": ">= 1",
    "training.checkpoint_every_n_steps": ">= 0",
    "training.num_threads": ">= 1",
    "viz.max_frames": ">= 0",
    "viz.score_threshold": "0..1",
    "optimizer.lr": "> 0",
    "optimizer.weight_decay": ">= 0",
    "optimizer.momentum": "0..1",
    "scheduler.warmup_steps": ">= 0",
    "scheduler.min_lr_ratio": "0..1",
    "scheduler.milestones": "0..1",
    "scheduler.gamma": "> 0",
    "data.clip_len": ">= 1",
    "data.extra_train_sets": ">= 0",
    "data.max_interval": ">= 1",
    "data.train_stride": ">= 1",
    "data.val_stride": ">= 1",
    "data.batch_size": ">= 1",
    "data.eval_batch_size": ">= 1",
    "data.num_workers": ">= 0",
    "data.num_classes": ">= 1",
    "data.train_sizes": ">= 1",
    "data.eval_size": ">= 1",
    "data.max_size": ">= 1",
    "data.hflip": "0..1",
    "data.crop": "0..1",
    "data.crop_scale": "> 0",
    "data.color_jitter": ">= 0",
    "data.hue": "0..0.5",
    "data.min_box_size": ">= 0",
    "model.num_queries": ">= 1",
    "model.d_model": ">= 1",
    "model.nhead": ">= 1",
    "model.num_encoder_layers": ">= 0",
    "model.num_decoder_layers": ">= 1",
    "model.dim_feedforward": ">= 1",
    "model.dropout": "0..1",
    "model.box_pool": ">= 0",
    "model.box_stage": "1..4",
    "model.backbone.out_layer": "1..4",
    "model.backbone.num_levels": ">= 1",
    "model.backbone.unfreeze_after": ">= 0",
    "model.backbone.lr_mult": ">= 0",
    "head.matcher.cost_class": ">= 0",
    "head.matcher.cost_bbox": ">= 0",
    "head.matcher.cost_giou": ">= 0",
    "head.weights.cls": ">= 0",
    "head.weights.bbox": ">= 0",
    "head.weights.giou": ">= 0",
    "head.weights.exist": ">= 0",
    "head.focal_alpha": "0..1",
    "head.focal_gamma": ">= 0",
    "association.chain_len": ">= 1",
    "association.link_dim": ">= 1",
    "association.weight": ">= 0",
    "association.drop": "0..1",
    "association.false_positive": "0..1",
    "association.dim": ">= 1",
    "association.layers": ">= 1",
    "association.heads": ">= 1",
    "association.vocabulary": ">= 1",
    "association.history": ">= 1",
    "association.occlusion": "0..1",
    "association.switch": "0..1",
    "association.id_threshold": "0..1",
    "head.denoise.num_groups": ">= 1",
    "head.denoise.box_noise_scale": ">= 0",
    "head.denoise.label_noise_ratio": "0..1",
    "head.denoise.id_noise_ratio": "0..1",
    "trainer.num_nodes": ">= 1",
    "trainer.max_epochs": ">= -1",
    "trainer.max_steps": ">= -1",
    "trainer.min_epochs": ">= 0",
    "trainer.gradient_clip_val": ">= 0",
    "trainer.accumulate_grad_batches": ">= 1",
    "trainer.log_every_n_steps": ">= 1",
    "trainer.check_val_every_n_epoch": ">= 1",
    "trainer.num_sanity_val_steps": ">= -1",
    "trainer.limit_train_batches": ">= 0",
    "trainer.limit_val_batches": ">= 0",
    "trainer.limit_test_batches": ">= 0",
    "eval.every_n_epochs": ">= 0",
}
# Values of our own beside what the built object accepts (resolved before it is built).
OWN_VALUES: dict[str, tuple[Any, ...]] = {"trainer.precision": (AUTO,)}
_INTERPOLATION = re.compile(r"^\$\{([\w.]+)\}$")
_ABSENT = object()


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError listing every problem found, one ``key: what is wrong`` per problem."""
    try:
        missing = sorted(OmegaConf.missing_keys(cfg))
        if not missing:
            OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        raise ConfigError(f"{key}: {str(err).splitlines()[0]}") from None
    if missing:
        examples = " ".join(f"{key}=..." for key in missing)
        raise ConfigError(f"missing required value(s): {', '.join(missing)}; set them on the command line ({examples})")
    problems: dict[str, str] = {}
    _check_tracker(cfg, problems)
    _check_extra_sets(cfg, problems)
    _check_keys(cfg, problems)
    _check_targets(cfg, "", problems)
    _check_ranges(cfg, problems)
    if problems:
        raise ConfigError("; ".join(f"{key}: {why}" for key, why in problems.items()))


def _check_tracker(cfg: DictConfig, problems: dict[str, str]) -> None:
    """``eval.tracker`` against ``TrackerOptions`` (its ranges and keep <= start)."""
    if OmegaConf.select(cfg, "eval.tracker") is None:
        return
    try:
        TrackerOptions.from_mapping(OmegaConf.to_container(cfg.eval.tracker, resolve=True))
    except ConfigError as err:
        key, _, why = str(err).partition(": ")
        problems[key.split("=")[0]] = why


def _check_extra_sets(cfg: DictConfig, problems: dict[str, str]) -> None:
    """A fit's extra train sets come from the synthetic generator; an evaluation (train=false) reads none."""
    if not cfg.get("train", True):
        return
    extra, synthetic = (OmegaConf.select(cfg, key, default=None) for key in ("data.extra_train_sets", "data.synthetic"))
    problem = extra_sets_problem(extra, synthetic)
    if problem:
        problems["data.extra_train_sets"] = problem


def _check_keys(cfg: DictConfig, problems: dict[str, str]) -> None:
    for key, expected in KEY_TYPES.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is _ABSENT:
            continue
        problem = _type_problem(value, expected)
        if problem:
            problems.setdefault(_source_key(cfg, key), problem)


def _check_ranges(cfg: DictConfig, problems: dict[str, str]) -> None:
    """Every number of a ``KEY_RANGES`` key (and of a list there) inside its range; keys of the wrong
    type are left to the type checks."""
    for key, allowed in KEY_RANGES.items():
        value = _plain(OmegaConf.select(cfg, key, default=None))
        source = _source_key(cfg, key)
        if value is None or source in problems or key in problems:
            continue
        items = value if isinstance(value, list) else [value]
        numbers = [v for v in items if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(numbers) == len(items) and not all(_in_range(v, allowed) for v in numbers):
            problems[source] = f"{value!r} is out of range, expected {'each ' if isinstance(value, list) else ''}{allowed}"


def _in_range(value: float, allowed: str) -> bool:
    """Whether ``value`` lies in ``allowed`` ("> 0", ">= 1", "0..1"); NaN is never refused here."""
    if ".." in allowed:
        low, high = (float(x) for x in allowed.split(".."))
        return not (value < low or value > high)
    operator, bound = allowed.split()
    return not (value <= float(bound) if operator == ">" else value < float(bound))


def _check_targets(node: Any, prefix: str, problems: dict[str, str]) -> None:
    """Check the keys of every ``_target_`` node against the annotations of what it builds."""
    if isinstance(node, ListConfig):
        for i, item in enumerate(node):
            _check_targets(item, f"{prefix}[{i}]", problems)
        return
    if not isinstance(node, DictConfig):
        return
    hints, parameters = _signature_of(node.get("_target_")) if "_target_" in node else ({}, {})
    for key in node:
        path = f"{prefix}.{key}" if prefix else str(key)
        child = node[key]
        if isinstance(child, DictConfig | ListConfig):
            _check_targets(child, path, problems)
        if str(key).startswith("_") or not parameters:
            continue
        if key not in parameters and not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            problems.setdefault(path, f"{node['_target_']} takes no argument {key!r}")
        elif key in hints and not _builds_object(child) and child not in OWN_VALUES.get(path, ()):
            problem = _type_problem(child, hints[key])
            if problem and path in OWN_VALUES:
                problem = problem.replace("expected ", f"expected {' or '.join(map(repr, OWN_VALUES[path]))} or ", 1)
            if problem:
                problems.setdefault(_source_key(node, key, path), problem)


def _signature_of(target: Any) -> tuple[dict[str, Any], dict[str, inspect.Parameter]]:
    """(type hints, parameters) of a ``_target_``'s constructor; empty when it cannot be inspected."""
    try:
        obj = get_object(str(target))
        function = obj.__init__ if inspect.isclass(obj) else obj
        parameters = dict(inspect.signature(function).parameters)
        hints = typing.get_type_hints(function)
    except Exception:  # an unimportable target is reported by instantiate itself
        return {}, {}
    return hints, parameters


def _type_problem(value: Any, expected: Any) -> str | None:
    value = _plain(value)
    try:
        check_type(value, expected, collection_check_strategy=CollectionCheckStrategy.ALL_ITEMS)
    except TypeCheckError:
        return f"expected {_describe(expected)}, got {value!r} ({type(value).__name__})"
    return None


def _builds_object(node: Any) -> bool:
    """The node (or an item of it) is a ``_target_`` node: checked on its own, not as a value."""
    if isinstance(node, ListConfig):
        return any(_builds_object(item) for item in node)
    return isinstance(node, DictConfig) and "_target_" in node


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig | ListConfig) else value


def _source_key(node: DictConfig, key: str, path: str | None = None) -> str:
    """The key a user typed: ``model.backbone.freeze`` rather than ``callbacks.backbone_freeze.freeze``
    when the latter is ``${model.backbone.freeze}``."""
    raw = OmegaConf.to_container(node, resolve=False)
    for part in key.split("."):
        raw = raw.get(part) if isinstance(raw, dict) else None
    match = _INTERPOLATION.match(raw) if isinstance(raw, str) else None
    return match.group(1) if match else (path or key)


def _describe(annotation: Any) -> str:
    """``int | None``, ``one of '32-true', 'bf16-mixed', ... | None``: an annotation as a user reads it."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(v) for v in args)
    if origin in (typing.Union, types.UnionType):
        literals = [v for a in args if typing.get_origin(a) is typing.Literal for v in typing.get_args(a)]
        others = [_describe(a) for a in args if typing.get_origin(a) is not typing.Literal]
        return " | ".join(([_describe(typing.Literal[tuple(literals)])] if literals else []) + others)
    if annotation is type(None):
        return "None"
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", text)


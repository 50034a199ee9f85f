"""The search's study: created, or continued when it optimises the same metric in the same direction."""

from __future__ import annotations

import importlib
from typing import Any

import optuna
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig
from optuna.pruners import NopPruner

from scene_model.errors import ConfigError
from scene_model.runtime.search.storage import open_storage

METRIC_ATTR = "optimized_metric"


def open_study(options: DictConfig, metric: str | None) -> optuna.Study:
    """The study of ``hydra.sweeper`` (``options``) with its sampler and pruner.

    Continuing a study under another ``optimized_metric`` would mix two objectives in one study: optuna
    takes that silently when the direction is the same, and fails with a bare ValueError when it is not.
    The study records its metric as a user attribute, and a mismatch is refused in words.
    """
    sampler = build(options.get("sampler"), "hydra.sweeper.sampler")
    pruner = build(options.get("pruner"), "hydra.sweeper.pruner") or NopPruner()
    storage, name = open_storage(options.get("storage")), options.get("study_name")
    if storage is None and not isinstance(pruner, NopPruner):
        raise ConfigError(
            "hydra.sweeper.pruner: the trials' jobs report to their study in its storage, and "
            "hydra.sweeper.storage is null; give it a database URL or a journal file"
        )
    directions = direction_names(options.direction)
    made = dict(storage=storage, study_name=name, sampler=sampler, pruner=pruner)
    if storage is None:
        return optuna.create_study(directions=directions, **made)
    try:
        study = optuna.load_study(**made)
    except KeyError:  # no such study yet
        study = optuna.create_study(directions=directions, load_if_exists=True, **made)
    found = direction_names([d.name for d in study.directions])
    recorded = study.user_attrs.get(METRIC_ATTR)
    if found != directions or (recorded is not None and recorded != metric):
        raise ConfigError(
            f"study {name!r} in {options.storage} optimises {recorded or 'its objective'} ({', '.join(found)}); "
            f"this command asks for optimized_metric={metric} ({', '.join(directions)}). "
            f"Name a new study with task_name=... (or hydra.sweeper.study_name=...)"
        )
    if recorded is None:
        study.set_user_attr(METRIC_ATTR, metric)
    return study


def build(node: Any, key: str) -> Any:
    """The object a ``{_target_: ...}`` option builds (None for None); what cannot be built is one line naming ``key``."""
    if node is None:
        return None
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    if not target:
        raise ConfigError(f"{key}: expected {{_target_: ...}} (e.g. {{_target_: optuna.pruners.MedianPruner}}), got {node!r}")
    module, _, name = str(target).rpartition(".")
    try:
        getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"{key}._target_: {target!r} does not exist (e.g. optuna.pruners.MedianPruner)") from None
    try:
        return instantiate(node)
    except InstantiationException as err:
        cause = err.__cause__ or err
        raise ConfigError(f"{key}: {target} refuses its options: {str(cause).splitlines()[0]}") from None


def direction_names(direction: Any) -> list[str]:
    """``minimize`` / ``maximize`` for each objective, from a name, an enum or a list of them."""
    items = list(direction) if isinstance(direction, (list, tuple, ListConfig)) else [direction]
    return [str(getattr(d, "name", d)).lower() for d in items]

"""A Hydra callback that opens the search's study before the sweeper does, to check it is the same search."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig

from scene_model.errors import ConfigError

log = logging.getLogger(__name__)
METRIC_ATTR = "optimized_metric"


class PrepareStudy(Callback):
    """Before the sweeper opens the study: refuse to continue one that optimises another metric.

    Hydra turns a callback's exception into a warning, so a refusal is printed and exits with status 1.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            prepare_study(config)
        except ConfigError as err:
            log.error(f"{type(err).__name__}: {err}")
            raise SystemExit(1) from None


def prepare_study(config: DictConfig) -> None:
    """Create the search's study with its direction and metric, or check that the existing one has the same.

    Continuing a study under another ``optimized_metric`` would mix two objectives in one study: optuna
    takes that silently when the direction is the same, and fails with a bare ValueError when it is not.
    The study records its metric as a user attribute, and a mismatch is refused in words. For an SQLite
    URL the file's directory is made first: SQLite creates the file, not its directory.
    """
    sweeper = config.hydra.sweeper
    storage, name = sweeper.get("storage"), sweeper.get("study_name")
    if not storage or not name:
        return  # an in-memory study lives and ends with this command
    if str(storage).startswith("sqlite"):
        make_sqlite_directory(str(storage))
    directions = direction_names(sweeper.direction)
    metric = config.get("optimized_metric")
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:  # no such study yet
        study = optuna.create_study(study_name=name, storage=storage, directions=directions, load_if_exists=True)
    found = direction_names([d.name for d in study.directions])
    recorded = study.user_attrs.get(METRIC_ATTR)
    if found != directions or (recorded is not None and recorded != metric):
        raise ConfigError(
            f"study {name!r} in {storage} optimises {recorded or 'its objective'} ({', '.join(found)}); "
            f"this command asks for optimized_metric={metric} ({', '.join(directions)}). "
            f"Name a new study with task_name=... (or hydra.sweeper.study_name=...)"
        )
    if recorded is None:
        study.set_user_attr(METRIC_ATTR, metric)


def direction_names(direction: Any) -> list[str]:
    """``minimize`` / ``maximize`` for each objective, from a name, an enum or a list of them."""
    items = list(direction) if isinstance(direction, (list, tuple, ListConfig)) else [direction]
    return [str(getattr(d, "name", d)).lower() for d in items]


def make_sqlite_directory(url: str) -> None:
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)

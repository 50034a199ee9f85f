"""The sweeper's options (``hydra.sweeper.*``), registered as ``hydra/sweeper: scene_model_optuna``."""

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.scene_model_sweeper.optuna_sweeper.OptunaSweeper"
    # The sampler and pruner are built by the search, which names a `_target_` it cannot build in one line.
    _recursive_: bool = False
    sampler: Any = None  # {_target_: optuna.samplers.TPESampler, seed: ...}; None: Optuna's default (TPE)
    pruner: Any = None  # {_target_: optuna.pruners.MedianPruner, ...}; None: no trial is pruned
    direction: str = "minimize"
    # An SQLAlchemy URL (sqlite:///path.db, postgresql://host/db, ...), the path of an Optuna journal file,
    # or None: a study in memory, for this command only.
    storage: str | None = None
    study_name: str | None = None
    n_trials: int = 20  # trials this command runs
    n_jobs: int = 1  # trials launched at once, one launcher batch
    max_failure_rate: float = 0.0  # of a batch's trials; above it the search stops
    params: dict[str, str] | None = None  # the search space in Hydra's sweep grammar, by key
    # Set by the sweeper in each trial's job: the number of the Optuna trial the job runs.
    trial: int | None = None


ConfigStore.instance().store(group="hydra/sweeper", name="scene_model_optuna", node=OptunaSweeperConf, provider="scene_model")

"""Hydra's entry to the Optuna search of ``scene_model.runtime.search.sweep``.

Hydra takes sweepers only from the ``hydra_plugins`` package, and imports every plugin module on every
run: this one imports no optuna (the ``search`` extra), the search does when it starts.
"""

from __future__ import annotations

import logging
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class OptunaSweeper(Sweeper):
    """Runs ``hydra.sweeper.n_trials`` Optuna trials through the configured launcher (options: ``config.py``)."""

    def __init__(self, **_options: Any) -> None:
        """Hydra passes ``hydra.sweeper``'s options; the search reads them from the config given to setup."""
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        try:
            from scene_model.runtime.search.sweep import run_search
        except ModuleNotFoundError as err:
            log.error(f"ModuleNotFoundError: the Optuna search needs {err.name}: pip install -e '.[search]'")
            raise SystemExit(1) from None
        assert self.config is not None and self.launcher is not None
        run_search(self.config, self.launcher, arguments)

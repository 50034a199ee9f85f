"""Run every trial of a search in ``<sweep dir>/<Optuna trial number>``."""

from __future__ import annotations

from omegaconf import DictConfig
from optuna.trial import Trial

TRIAL_DIR_KEY = "hydra.sweep.subdir"


def name_trial_directory(config: DictConfig, trial: Trial) -> None:
    """hydra-optuna-sweeper's ``custom_search_space`` hook: add the override ``hydra.sweep.subdir=<number>``.

    The sweeper numbers its jobs from 0 in every invocation, so a continued study would run its new
    trials in the directories of the first ones. The trial number is unique in the study (also when
    several sweepers share it), so each trial gets a directory of its own, and the study's
    ``params_hydra.sweep.subdir`` names it. A one-value distribution is recorded without sampling and is
    left out of the samplers' and importance tools' search space (it differs from trial to trial).
    """
    trial.suggest_int(TRIAL_DIR_KEY, trial.number, trial.number)

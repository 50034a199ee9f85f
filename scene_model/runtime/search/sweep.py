"""An Optuna search run through Hydra's launcher: ask a batch of trials, launch their jobs, tell their results.

Optuna samples, prunes and stores; the launcher (basic, or submitit on SLURM) runs the jobs. Each trial's
job runs in ``<sweep dir>/<trial number>`` and finds its trial through ``hydra.sweeper.trial`` (its
study through ``hydra.sweeper.storage`` and ``study_name``), which ``pruning.ReportToTrial`` reports to.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import optuna
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from scene_model.errors import SceneModelError
from scene_model.outputs import write_text_atomically
from scene_model.runtime.ranks import first_line
from scene_model.runtime.search.pruning import PRUNED_EPOCH
from scene_model.runtime.search.space import SearchSpace, search_space
from scene_model.runtime.search.study import open_study

log = logging.getLogger(__name__)


def run_search(config: DictConfig, launcher: Launcher, arguments: Sequence[str]) -> None:
    """The search of ``config.hydra.sweeper`` over its ``params`` and the command line's ``arguments``; a
    mistake a user can fix is one line and exit status 1 (Hydra would print a traceback)."""
    try:
        search(config, launcher, arguments)
    except SceneModelError as err:
        log.error(f"{type(err).__name__}: {err}")
        raise SystemExit(1) from None


def search(config: DictConfig, launcher: Launcher, arguments: Sequence[str]) -> None:
    options = config.hydra.sweeper
    space = search_space([*(f"{key}={value}" for key, value in (options.params or {}).items()), *arguments])
    metric = config.get("optimized_metric")
    study = open_study(options, metric)
    log.info(
        f"Optuna {optuna.__version__}: study {study.study_name!r} in {options.storage or 'memory'}, "
        f"{type(study.sampler).__name__}, {type(study.pruner).__name__}, {options.direction} {metric}"
    )
    remaining, job_idx = options.n_trials, 0
    while remaining > 0:
        trials = [study.ask(space.distributions) for _ in range(min(options.n_jobs, remaining))]
        returns = launcher.launch([trial_overrides(trial, space) for trial in trials], initial_job_idx=job_idx)
        job_idx, remaining = job_idx + len(returns), remaining - len(trials)
        pruned = {t.number: t.user_attrs.get(PRUNED_EPOCH) for t in study.get_trials(deepcopy=False)}
        states = [tell(study, trial, ret, pruned[trial.number] is not None) for trial, ret in zip(trials, returns, strict=True)]
        failed = states.count(TrialState.FAIL)
        if failed / len(states) > options.max_failure_rate:
            log.error(
                f"{failed} of {len(states)} trials failed, more than hydra.sweeper.max_failure_rate="
                f"{options.max_failure_rate}: the search stops"
            )
            raise SystemExit(1)
    save_results(study, Path(config.hydra.sweep.dir) / "optimization_results.yaml")


def trial_overrides(trial: optuna.Trial, space: SearchSpace) -> list[str]:
    """The job's overrides: the trial's parameters, the fixed values (also kept as user attributes of the
    trial), its directory and its number."""
    for key, override in space.fixed.items():
        trial.set_user_attr(key, override.get_value_element_as_str())
    return [
        *(f"{key}={value}" for key, value in trial.params.items()),
        *(override.input_line for override in space.fixed.values()),
        f"hydra.sweep.subdir={trial.number}",
        f"hydra.sweeper.trial={trial.number}",
    ]


def tell(study: optuna.Study, trial: optuna.Trial, ret: JobReturn, pruned: bool) -> TrialState:
    """Record the job's outcome: PRUNED (Optuna keeps its last reported value) when its fit was stopped,
    COMPLETE with the value it returned, FAIL when it raised or returned no finite value."""
    try:
        value = ret.return_value
    except Exception as err:  # the job raised: its traceback is in the trial's train.log
        return fail(study, trial, first_line(err))
    if not isinstance(value, int | float) or not math.isfinite(value):
        return fail(study, trial, f"it returned {value!r}, no finite value of the optimised metric")
    if pruned:
        study.tell(trial, state=TrialState.PRUNED)
        log.info(f"Trial {trial.number} pruned: {value:.6g}")
        return TrialState.PRUNED
    study.tell(trial, value)
    log.info(f"Trial {trial.number} complete: {value:.6g}")
    return TrialState.COMPLETE


def fail(study: optuna.Study, trial: optuna.Trial, why: str) -> TrialState:
    study.tell(trial, state=TrialState.FAIL)
    log.warning(f"Trial {trial.number} failed: {why}")
    return TrialState.FAIL


def save_results(study: optuna.Study, path: Path) -> None:
    """Log the best trial so far and write it to ``path`` (``optimization_results.yaml``)."""
    try:
        best = study.best_trial
    except ValueError:  # no trial has completed
        log.warning(f"No trial of study {study.study_name!r} has completed yet: no best value")
        return
    log.info(f"Best parameters: {best.params}")
    log.info(f"Best value: {best.value} (trial {best.number})")
    results = {"name": "optuna", "best_trial": best.number, "best_params": best.params, "best_value": best.value}
    write_text_atomically(path, OmegaConf.to_yaml(OmegaConf.create(results)), "the search's results")

"""TPE whose random draws are seeded by the trial number, so that a continued study goes on exploring."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState


class TrialSeededTPESampler(BaseSampler):
    """optuna's TPESampler, with each draw seeded by ``(seed, trial number, parameter name)``.

    ``TPESampler(seed=s)`` starts the same random sequence in every process that builds it: a study
    continued by running the same command again (or shared by several sweeper processes) gets the
    parameters of its first trials proposed again. Deriving every draw's seed from the trial number
    keeps a fresh search reproducible and gives each trial of a continued study draws of its own.
    The other keyword arguments are TPESampler's.
    """

    def __init__(self, seed: int | None = None, **tpe_kwargs: Any) -> None:
        TPESampler(**tpe_kwargs)  # refuse a wrong option now, not at the first trial
        self._seed = seed
        self._tpe_kwargs = tpe_kwargs

    def _tpe(self, trial: FrozenTrial, salt: str) -> TPESampler:
        seed = None
        if self._seed is not None:
            entropy = [self._seed, trial.number, zlib.crc32(salt.encode())]
            seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
        return TPESampler(seed=seed, **self._tpe_kwargs)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._tpe(trial, "").infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._tpe(trial, "").sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._tpe(trial, param_name).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self, study: Study, trial: FrozenTrial, state: TrialState, values: list[float] | None
    ) -> None:
        self._tpe(trial, "").after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._seed = int(np.random.SeedSequence().generate_state(1)[0])

"""Hydra's sweep grammar as an Optuna search space: ``choice``, ``range``, ``interval``, ``tag(log, ...)``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution


@dataclass
class SearchSpace:
    """The searched keys with their distributions, and the plain overrides every trial gets as they are."""

    distributions: dict[str, BaseDistribution]
    fixed: dict[str, Override]


def search_space(overrides: Sequence[str]) -> SearchSpace:
    """Split ``overrides`` into distributions (sweep expressions) and fixed values; of several overrides of
    one key the last counts, so the command line redefines or fixes a dimension of ``hydra.sweeper.params``."""
    by_key = {o.get_key_element(): o for o in OverridesParser.create().parse_overrides(list(overrides))}
    return SearchSpace(
        distributions={key: distribution(o) for key, o in by_key.items() if o.is_sweep_override()},
        fixed={key: o for key, o in by_key.items() if not o.is_sweep_override()},
    )


def distribution(override: Override) -> BaseDistribution:
    """``choice`` and ``shuffle(range)``: categorical; ``range``: int or float with its step (the last value
    Hydra's range yields is the high end); ``interval``: float, on a log scale when tagged ``log``."""
    value = override.value()
    if override.is_choice_sweep() or (isinstance(value, RangeSweep) and value.shuffle):
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if isinstance(value, RangeSweep):
        values = list(override.sweep_iterator())
        low, high, step = min(values), max(values), abs(value.step)
        if all(isinstance(v, int) for v in (value.start, value.stop, value.step)):
            return IntDistribution(low, high, step=step)
        return FloatDistribution(low, high, step=step)
    assert isinstance(value, IntervalSweep)
    return FloatDistribution(value.start, value.end, log="log" in value.tags)

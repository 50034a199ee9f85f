"""Benchmarks: ``python -m bench`` (``make bench``) runs every module of this package and prints its rows.

Adding one: write ``bench/<name>.py`` with ``run(quick: bool) -> list[Row]``; ``python -m bench``
finds it (modules whose name starts with ``_`` are helpers, not benchmarks). Figures that are
compared are measured in the same run and reported as ratios, since absolute timings on a shared
machine drift from one run to the next.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One printed figure of a benchmark."""

    bench: str  # the module's name
    name: str  # what was measured
    value: float
    unit: str
    note: str = ""

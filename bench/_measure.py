"""Measuring helpers shared by the benchmarks: interleaved timing and peak resident memory."""

from __future__ import annotations

import multiprocessing
import resource
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def interleaved_seconds(passes: Mapping[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Total seconds of each pass over ``rounds`` rounds, the passes taking turns within a round
    (and starting from a different one each round) so that a change of machine load hits all alike."""
    names = list(passes)
    totals = dict.fromkeys(names, 0.0)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            passes[name]()
            totals[name] += time.perf_counter() - start
    return totals


def _status_kib(key: str) -> int | None:
    if not _STATUS.is_file():
        return None
    for line in _STATUS.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def _reset_peak() -> bool:
    """Reset the process's resident high-water mark (Linux); False where that is not possible."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None and _status_kib("VmRSS") is not None


def peak_memory_mib(fn: Callable[[], object]) -> float:
    """Peak resident memory (MiB) that ``fn`` adds to the process.

    On Linux the process's high-water mark is reset before the call (``/proc/self/clear_refs``), so
    the figure is this call's alone; elsewhere it is the growth of the process's lifetime peak.
    """
    if _reset_peak():
        before = _status_kib("VmRSS")
        fn()
        return (_status_kib("VmHWM") - before) / 1024
    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * unit / 2**20


def isolated_peak_memory_mib(setup: Callable[..., Callable[[], object]], *args: object) -> float:
    """Peak resident memory (MiB) that ``setup(*args)()`` adds to a fresh process.

    ``setup`` (a module-level function) runs first in a new interpreter and is not measured (imports,
    building); the call it returns is. A fresh process keeps the allocator's earlier pages out of it.
    """
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_peak_in_child, (setup, args))


def _peak_in_child(setup: Callable[..., Callable[[], object]], args: tuple) -> float:
    return peak_memory_mib(setup(*args))

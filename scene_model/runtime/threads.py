"""How many threads torch computes with, next to the data loader's worker processes.

torch starts one intra-op thread per core by default, and every data loader worker is one more busy
process: on a small CPU the two oversubscribe the cores, and OpenMP threads that wait for a core spin
instead of computing (a training step measured several times slower than with the cores shared out).
"""

from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger(__name__)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask: what SLURM or a container grants), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def configure_threads(num_threads: int | None, num_workers: int) -> int:
    """Set torch's intra-op threads: ``num_threads``; else (None) leave an ``OMP_NUM_THREADS`` set in the
    environment as torch read it; else the available CPUs less one per loader worker, at least one.
    Returns torch's thread count."""
    if num_threads is None and os.environ.get("OMP_NUM_THREADS"):
        source = "OMP_NUM_THREADS"
    else:
        source = "training.num_threads" if num_threads is not None else "CPUs less loader workers"
        torch.set_num_threads(num_threads if num_threads is not None else max(1, available_cpus() - max(0, num_workers)))
    threads = torch.get_num_threads()
    log.info(f"torch threads: {threads} ({source}; {available_cpus()} CPUs available, {num_workers} data loader worker(s))")
    return threads

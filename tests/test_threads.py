"""torch's thread count next to the data loader workers."""

from __future__ import annotations

import pytest
import torch

from scene_model.runtime import threads


@pytest.fixture(autouse=True)
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_cpus_are_shared_out_between_workers_and_torch(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "available_cpus", lambda: 4)
    assert threads.configure_threads(None, 1) == 3 == torch.get_num_threads()
    assert threads.configure_threads(None, 6) == 1  # never below one
    assert threads.configure_threads(2, 0) == 2  # training.num_threads wins


def test_an_omp_num_threads_of_the_environment_is_kept(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(threads, "available_cpus", lambda: 4)
    torch.set_num_threads(1)
    assert threads.configure_threads(None, 0) == 1
    assert threads.configure_threads(3, 0) == 3

"""pytest plugin for the tests that need a real SLURM cluster (marked ``slurm``).

They run only with ``--slurm`` (``make test-slurm``); without it they are deselected, so ``make test``
needs neither root nor slurm. ``slurm_cluster`` starts one local cluster for the whole session, and
``submit_train`` runs ``train.py -m hydra/launcher=slurm`` against it, e.g. a sweeper's trials:

    @pytest.mark.slurm
    def test_search(submit_train, tiny_root, tmp_path):
        result = submit_train("hparams_search=...", *tiny_overrides(tiny_root), log_dir=tmp_path)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.slurm.cluster import LocalSlurmCluster

REPO_ROOT = Path(__file__).resolve().parents[2]
# Small jobs: one CPU per task, and a time limit the local cluster never reaches.
LAUNCHER_OVERRIDES = ("hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=30")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slurm", action="store_true", help="run the tests that start a local SLURM cluster")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slurm: needs a local SLURM cluster (root, apt); run with --slurm")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slurm"):
        return
    deselected = [item for item in items if item.get_closest_marker("slurm")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("slurm")]


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[LocalSlurmCluster]:
    cluster = LocalSlurmCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)


def train_command(*overrides: str, log_dir) -> list[str]:
    return [sys.executable, "train.py", "-m", *LAUNCHER_OVERRIDES, f"paths.log_dir={log_dir}", *overrides]


@pytest.fixture
def submit_train(slurm_cluster) -> Callable[..., subprocess.CompletedProcess]:
    """submit_train(*overrides, log_dir=..., timeout=...) runs a sweep on the cluster and waits for it."""

    def submit(*overrides: str, log_dir, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run(
            train_command(*overrides, log_dir=log_dir), cwd=REPO_ROOT, env=slurm_cluster.env,
            capture_output=True, text=True, timeout=timeout,
        )

    return submit

"""train.py as a user runs it: a real subprocess."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO, tiny_overrides


def run_train(*args: str, cwd=REPO, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train.py", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_local_sweep_runs_two_jobs_into_two_subdirectories(tiny_root, tmp_path):
    result = run_train("-m", "optimizer.lr=1e-4,3e-4", "debug=fast", f"paths.log_dir={tmp_path}",
                       *tiny_overrides(tiny_root))
    assert result.returncode == 0, result.stderr[-3000:]
    sweeps = list((tmp_path / "multiruns").iterdir())
    assert len(sweeps) == 1
    jobs = sorted(p.name for p in sweeps[0].iterdir() if p.is_dir() and not p.name.startswith("."))
    assert jobs == ["0", "1"]
    for job in jobs:
        assert (sweeps[0] / job / "checkpoints" / "last.ckpt").is_file()
    lrs = sorted(yaml.safe_load((sweeps[0] / j / ".hydra" / "config.yaml").read_text())["optimizer"]["lr"] for j in jobs)
    assert lrs == [1e-4, 3e-4]


@pytest.mark.slow
def test_missing_dataset_root_is_one_clear_message(tmp_path):
    result = run_train("data=dancetrack", "data.root=/does/not/exist", f"paths.log_dir={tmp_path}")
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "/does/not/exist" in output and "seqinfo.ini" in output and "gt/gt.txt" in output
    assert "Traceback" not in output

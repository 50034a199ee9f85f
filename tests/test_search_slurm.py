"""An Optuna search whose trials run as SLURM jobs on a real local cluster (``make test-slurm``)."""

from __future__ import annotations

import pytest

from tests.conftest import tiny_overrides
from tests.test_slurm import tail

pytestmark = pytest.mark.slurm
optuna = pytest.importorskip("optuna", reason="the search extra: pip install -e '.[search]'")


def test_two_trial_search_runs_as_one_slurm_job_array(submit_train, tiny_root, tmp_path):
    result = submit_train("hparams_search=optuna", "debug=fast", "hydra.sweeper.n_trials=2",
                          "hydra.sweeper.n_jobs=2", *tiny_overrides(tiny_root), log_dir=tmp_path)
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    search_dir = tmp_path / "searches" / "train"
    study = optuna.load_study(study_name="train", storage=f"sqlite:///{search_dir}/optuna.db")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert "Best parameters" in result.stdout + result.stderr
    for trial in study.trials:
        assert (search_dir / str(trial.number) / "checkpoints" / "last.ckpt").is_file()
    (script,) = (search_dir / ".submitit").glob("*submission*.sh")
    assert "#SBATCH --array=0-1%2" in script.read_text()  # both trials in one job array
    tasks = {p.name.split("_")[0] for p in (search_dir / ".submitit").iterdir() if p.is_dir() and "_" in p.name}
    assert len(tasks) == 1

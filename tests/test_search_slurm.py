"""An Optuna search whose trials run as SLURM jobs on a real local cluster (``make test-slurm``), its study
in a journal file on the file system the jobs share with the sweeper (no database server)."""

from __future__ import annotations

import pytest

from tests.conftest import tiny_overrides
from tests.test_slurm import tail

pytestmark = pytest.mark.slurm
optuna = pytest.importorskip("optuna", reason="the search extra: pip install -e '.[search]'")


def test_a_pruned_search_runs_as_slurm_job_arrays_with_a_journal_storage(submit_train, tiny_root, tmp_path):
    search_dir = tmp_path / "searches" / "train"
    journal = search_dir / "optuna.log"
    result = submit_train("hparams_search=optuna", *tiny_overrides(tiny_root), "trainer.max_epochs=2",
                          "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2", f"hydra.sweeper.storage={journal}",
                          "hydra.sweeper.pruner={_target_:optuna.pruners.MedianPruner,n_startup_trials:2}",
                          log_dir=tmp_path)
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    study = optuna.load_study(study_name="train", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))
    assert [t.state.name for t in study.trials[:2]] == ["COMPLETE", "COMPLETE"]
    assert {t.state.name for t in study.trials[2:]} <= {"COMPLETE", "PRUNED"}
    assert "Best value" in result.stdout + result.stderr
    for trial in study.trials:  # every job reached the study from its SLURM task: a value after each validation
        assert trial.intermediate_values and trial.value == trial.intermediate_values[max(trial.intermediate_values)]
        assert (search_dir / str(trial.number) / "checkpoints" / "last.ckpt").is_file()
    scripts = sorted((search_dir / ".submitit").glob("*/*submission*.sh")) or sorted((search_dir / ".submitit").glob("*submission*.sh"))
    assert scripts and all("#SBATCH --array=0-1%2" in s.read_text() for s in scripts)  # two trials a job array
    arrays = {p.name.split("_")[0] for p in (search_dir / ".submitit").iterdir() if p.is_dir() and "_" in p.name}
    assert len(arrays) == 2  # two batches of n_jobs=2

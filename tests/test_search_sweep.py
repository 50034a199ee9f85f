"""The Optuna search as a user runs it: ``train.py -m hparams_search=optuna`` in a subprocess."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO, tiny_overrides
from tests.test_cli import run_train

optuna = pytest.importorskip("optuna", reason="the search extra: pip install -e '.[search]'")


def search(log_dir, root, *args: str):
    result = run_train("-m", "hparams_search=optuna", f"paths.log_dir={log_dir}", *tiny_overrides(root), *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def load_study(search_dir, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{search_dir}/optuna.db")


def returned_value(run_dir) -> float:
    """The value train.py returned to the sweeper, as its run logged it."""
    return float(re.findall(r"val/loss/total = (\S+)", (run_dir / "train.log").read_text())[-1])


# Everything but the learning rate fixed on the command line: the search is over optimizer.lr alone.
LR_ONLY = ("optimizer.weight_decay=1e-4", "head.weights.cls=2.0", "head.weights.bbox=5.0", "head.weights.giou=2.0",
           "head.weights.exist=1.0")
MEDIAN = "hydra.sweeper.pruner={_target_:optuna.pruners.MedianPruner,n_startup_trials:2}"


@pytest.mark.slow
def test_a_pruner_stops_bad_trials_which_keep_their_run_and_the_search_goes_on(tiny_root, tmp_path):
    search_dir = tmp_path / "searches" / "train"
    result = search(tmp_path, tiny_root, "trainer.max_epochs=3", "hydra.sweeper.n_trials=6", *LR_ONLY, MEDIAN)
    assert f"Optuna {optuna.__version__}: study 'train'" in result.stdout and "MedianPruner" in result.stdout

    study = load_study(search_dir, "train")
    states = [t.state.name for t in study.trials]
    assert len(states) == 6 and "FAIL" not in states and states[:2] == ["COMPLETE", "COMPLETE"], states
    assert "PRUNED" in states, states
    for trial in study.trials:
        run_dir = search_dir / str(trial.number)
        assert (run_dir / "checkpoints" / "last.ckpt").is_file()
        assert trial.value == pytest.approx(returned_value(run_dir), rel=1e-5)  # pruned ones: their last value
        if trial.state.name == "PRUNED":
            assert trial.user_attrs["pruned_epoch"] == max(trial.intermediate_values) < 2
            assert f"Trial {trial.number} pruned after epoch" in (run_dir / "train.log").read_text()
        else:
            assert sorted(trial.intermediate_values) == [0, 1, 2]
    assert study.best_value == min(t.value for t in study.trials if t.state.name == "COMPLETE")
    results = yaml.safe_load((search_dir / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(returned_value(search_dir / str(study.best_trial.number)), rel=1e-5)


@pytest.mark.slow
def test_a_pruner_that_does_not_exist_stops_the_search_in_one_line(tmp_path):
    result = run_train("-m", "hparams_search=optuna", f"paths.log_dir={tmp_path}",
                       "hydra.sweeper.pruner={_target_:optuna.pruners.MedianPrunr}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "ConfigError: hydra.sweeper.pruner._target_: 'optuna.pruners.MedianPrunr' does not exist (e.g. optuna.pruners.MedianPruner)"]
    assert not list((tmp_path / "searches" / "train").glob("0"))


@pytest.mark.slow
def test_same_command_continues_the_study(tiny_root, tmp_path):
    search_dir = tmp_path / "searches" / "train"
    first = search(tmp_path, tiny_root, "debug=fast", "hydra.sweeper.n_trials=3")
    assert "Best parameters" in first.stdout and "Best value" in first.stdout
    assert len(load_study(search_dir, "train").trials) == 3

    search(tmp_path, tiny_root, "debug=fast", "hydra.sweeper.n_trials=2")
    study = load_study(search_dir, "train")
    trials = study.trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 5
    assert len({t.params["optimizer.lr"] for t in trials}) == 5  # the continuation proposed new points
    for trial in trials:  # each trial ran in the directory named by its number, none overwritten
        run_dir = search_dir / str(trial.number)
        assert (run_dir / "checkpoints" / "last.ckpt").is_file()
        config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
        assert config["optimizer"]["lr"] == pytest.approx(trial.params["optimizer.lr"])
    results = yaml.safe_load((search_dir / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(study.best_value)
    assert not list(tmp_path.glob("multiruns"))


@pytest.mark.slow
def test_failed_trials_are_recorded_and_the_search_goes_on(tiny_root, tmp_path):
    search_dir = tmp_path / "searches" / "failures"
    search_dir.mkdir(parents=True)
    study = optuna.create_study(study_name="failures", storage=f"sqlite:///{search_dir}/optuna.db")
    study.enqueue_trial({"model.nhead": 4, "head.weights.exist": 1.0})    # completes
    study.enqueue_trial({"model.nhead": 5, "head.weights.exist": 1.0})    # d_model 32 % 5 heads: raises
    study.enqueue_trial({"model.nhead": 4, "head.weights.exist": "nan"})  # val/loss/total is NaN
    result = search(tmp_path, tiny_root, "task_name=failures", "train=false", "eval.untrained=true", "model.nhead=choice(4,5)",
                    "head.weights.exist=choice(1.0,'nan')", "hydra.sweeper.n_trials=3")

    trials = load_study(search_dir, "failures").trials
    states = [t.state.name for t in trials]
    assert states == ["COMPLETE", "FAIL", "FAIL"], states
    assert [t.params["model.nhead"] for t in trials] == [4, 5, 4]
    assert result.stdout.count(" failed: ") == 2
    assert "Best value" in result.stdout
    assert "embed_dim must be divisible by num_heads" in (search_dir / "1" / "train.log").read_text()
    assert "diverged" in (search_dir / "2" / "train.log").read_text()


@pytest.mark.slow
def test_a_trial_with_test_true_completes(tiny_root, tmp_path):
    search(tmp_path, tiny_root, "debug=fast", "test=true", "hydra.sweeper.n_trials=1")
    trials = load_study(tmp_path / "searches" / "train", "train").trials
    assert [t.state.name for t in trials] == ["COMPLETE"] and trials[0].value is not None


@pytest.mark.slow
def test_without_the_search_extra_the_search_says_what_to_install(tmp_path):
    """``make train`` installs the core dependencies only: the sweeper is there, optuna is not."""
    code = ("import runpy, sys; sys.modules['optuna'] = None; "  # import optuna fails as it does where it is missing
            f"sys.argv = ['train.py', '-m', 'hparams_search=optuna', 'paths.log_dir={tmp_path}']; "
            "runpy.run_path('train.py', run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["ModuleNotFoundError: the Optuna search needs optuna: pip install -e '.[search]'"]

"""A trial's fit reports to its Optuna trial after every validation and stops cleanly when its pruner says so."""

from __future__ import annotations

import pytest

optuna = pytest.importorskip("optuna", reason="the search extra: pip install -e '.[search]'")

from scene_model.runtime.checkpoints import load_checkpoint_file  # noqa: E402
from scene_model.runtime.run import train  # noqa: E402
from scene_model.runtime.search.pruning import PRUNED_EPOCH  # noqa: E402
from scene_model.runtime.search.storage import open_storage  # noqa: E402
from tests.conftest import tiny_overrides  # noqa: E402
from tests.test_cli import run_train  # noqa: E402

ALWAYS = "{_target_:optuna.pruners.ThresholdPruner,upper:0.0}"  # every loss is above 0: pruned at the first report


def report_to(url: str, trial: int, pruner: str = "null") -> str:
    return (f"+callbacks.report_to_trial={{_target_:scene_model.runtime.search.pruning.ReportToTrial,"
            f"monitor:val/loss/total,storage:'{url}',study_name:s,trial:{trial},pruner:{pruner}}}")


def study_with_trials(url: str, count: int):
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    for _ in range(count):
        study.ask()
    return study


@pytest.mark.parametrize(("pruner", "epochs"), [(ALWAYS, [0]), ("null", [0, 1])])
def test_fit_reports_every_epoch_and_a_pruned_one_stops_with_its_checkpoint(pruner, epochs, tiny_cfg, tmp_path):
    url = f"{tmp_path}/optuna.log"
    study = study_with_trials(url, 2)
    value = train(tiny_cfg("trainer.max_epochs=2", report_to(url, 1, pruner)))
    trial = optuna.load_study(study_name="s", storage=open_storage(url)).trials[1]
    assert sorted(trial.intermediate_values) == epochs
    assert trial.intermediate_values[epochs[-1]] == pytest.approx(value)  # what train.py returns: the last value
    assert trial.user_attrs.get(PRUNED_EPOCH) == (0 if pruner == ALWAYS else None)
    assert study.trials[0].intermediate_values == {}  # only its own trial
    last = load_checkpoint_file(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 2 * len(epochs)  # 2 steps an epoch: the fit ended after its last report


def test_a_run_outside_a_search_reports_nothing(tiny_cfg, tmp_path):
    url = f"sqlite:///{tmp_path}/optuna.db"
    study_with_trials(url, 1)
    train(tiny_cfg(report_to(url, "null", ALWAYS)))
    assert optuna.load_study(study_name="s", storage=url).trials[0].intermediate_values == {}


@pytest.mark.slow
def test_under_ddp_rank_zero_reports_and_every_rank_stops(tiny_root, tmp_path):
    url = f"sqlite:///{tmp_path}/optuna.db"
    study_with_trials(url, 1)
    result = run_train("trainer=ddp_cpu", f"paths.log_dir={tmp_path}", *tiny_overrides(tiny_root), "trainer.max_epochs=3",
                       report_to(url, 0, ALWAYS))
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (tmp_path / "runs").iterdir()
    assert "pruned after epoch 0" in (run / "train.log").read_text()
    assert "pruned" not in (run / "train_ddp_process_1.log").read_text()
    assert list(optuna.load_study(study_name="s", storage=url).trials[0].intermediate_values) == [0]
    assert load_checkpoint_file(run / "checkpoints" / "last.ckpt")["global_step"] == 2  # one epoch of 2 steps

"""The Optuna search's parts: its config, the trial-seeded sampler, trial directories, the SQLite directory."""

from __future__ import annotations

import pytest

optuna = pytest.importorskip("optuna", reason="the search extra: pip install -e '.[search]'")

from omegaconf import OmegaConf  # noqa: E402
from optuna.distributions import CategoricalDistribution, LogUniformDistribution  # noqa: E402
from optuna.samplers import intersection_search_space  # noqa: E402

from scene_model.errors import ConfigError  # noqa: E402
from scene_model.runtime.search.sampler import TrialSeededTPESampler  # noqa: E402
from scene_model.runtime.search.study import PrepareStudy, prepare_study  # noqa: E402
from scene_model.runtime.search.trial_dirs import TRIAL_DIR_KEY, name_trial_directory  # noqa: E402
from tests.conftest import compose_config  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = {"lr": LogUniformDistribution(1e-5, 1e-3), "queries": CategoricalDistribution([10, 20, 30])}


def run_trials(study, n: int) -> list[dict]:
    """ask/tell as hydra-optuna-sweeper does, with a made-up objective."""
    for _ in range(n):
        trial = study.ask()
        params = {name: trial._suggest(name, dist) for name, dist in SPACE.items()}
        study.tell(trial, params["lr"] * params["queries"])
    return [t.params for t in study.trials]


def new_study(sampler, storage=None, name="s"):
    return optuna.create_study(study_name=name, storage=storage, sampler=sampler, load_if_exists=True)


# --- config ------------------------------------------------------------------------------------


def test_search_config_keeps_its_study_in_a_dated_free_sweep_directory(tmp_path):
    cfg = compose_config(["hparams_search=optuna", f"paths.log_dir={tmp_path}", "task_name=lr_search"])
    sweeper = cfg.hydra.sweeper
    assert cfg.hydra.sweep.dir == f"{tmp_path}/searches/lr_search"
    assert sweeper.study_name == "lr_search"
    assert sweeper.storage == f"sqlite:///{tmp_path}/searches/lr_search/optuna.db"
    assert sweeper.direction == "minimize"
    assert sweeper.max_failure_rate == 1.0
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert set(sweeper.params) == {"optimizer.lr", "optimizer.weight_decay", "model.num_queries",
                                   "head.weights.cls", "head.weights.bbox", "head.weights.giou",
                                   "head.weights.exist"}
    again = compose_config(["hparams_search=optuna", f"paths.log_dir={tmp_path}", "task_name=lr_search"])
    assert again.hydra.sweeper.storage == sweeper.storage


def test_every_searched_key_exists_in_the_run_config(tmp_path):
    cfg = compose_config(["hparams_search=optuna"])
    for key in cfg.hydra.sweeper.params:
        assert OmegaConf.select(cfg, key, throw_on_missing=True) is not None, key


@pytest.mark.parametrize(("metric", "direction"), [("val/loss/total", "minimize"), ("val/track/HOTA", "maximize"),
                                                   ("val/track/IDF1", "maximize")])
def test_direction_follows_the_optimized_metric(metric, direction):
    cfg = compose_config(["hparams_search=optuna", f"optimized_metric={metric}"])
    assert cfg.hydra.sweeper.direction == direction


def test_unknown_metric_direction_names_the_key_and_can_be_given():
    from omegaconf.errors import InterpolationKeyError

    cfg = compose_config(["hparams_search=optuna", "optimized_metric=val/mAP"])
    with pytest.raises(InterpolationKeyError, match="metric_directions.val/mAP"):
        _ = cfg.hydra.sweeper.direction
    cfg = compose_config(["hparams_search=optuna", "optimized_metric=val/mAP", "hydra.sweeper.direction=maximize"])
    assert cfg.hydra.sweeper.direction == "maximize"


def test_the_run_config_without_a_search_keeps_the_basic_sweeper():
    cfg = compose_config([])
    assert "optuna" not in cfg.hydra.sweeper._target_
    assert "metric_directions" not in cfg


# --- sampler -----------------------------------------------------------------------------------


def test_same_seed_gives_the_same_search():
    first = run_trials(new_study(TrialSeededTPESampler(seed=7, n_startup_trials=2)), 5)
    second = run_trials(new_study(TrialSeededTPESampler(seed=7, n_startup_trials=2)), 5)
    other = run_trials(new_study(TrialSeededTPESampler(seed=8, n_startup_trials=2)), 5)
    assert first == second
    assert first != other


@pytest.mark.parametrize("sampler_cls", [TrialSeededTPESampler, optuna.samplers.TPESampler])
def test_continued_study_proposes_new_parameters_only_with_trial_seeding(sampler_cls):
    storage = optuna.storages.InMemoryStorage()
    run_trials(new_study(sampler_cls(seed=7), storage), 3)
    lrs = [p["lr"] for p in run_trials(new_study(sampler_cls(seed=7), storage), 3)]
    repeated = len(lrs) - len(set(lrs))
    # plain TPESampler(seed=7) replays its random start in the second process: trials 3..5 == 0..2
    assert repeated == (0 if sampler_cls is TrialSeededTPESampler else 3), lrs


def test_tpe_options_are_checked_when_built():
    with pytest.raises(TypeError, match="n_startup"):
        TrialSeededTPESampler(seed=1, n_startup=3)


# --- trial directories ---------------------------------------------------------------------------


def test_trial_directory_is_the_trial_number_and_stays_out_of_the_search_space():
    storage = optuna.storages.InMemoryStorage()
    for _ in range(2):  # two invocations of the sweeper on one study
        study = new_study(TrialSeededTPESampler(seed=0), storage)
        for _ in range(2):
            trial = study.ask()
            trial._suggest("lr", SPACE["lr"])
            name_trial_directory(OmegaConf.create(), trial)
            study.tell(trial, 1.0)
    assert [t.params[TRIAL_DIR_KEY] for t in study.trials] == [0, 1, 2, 3]
    assert set(intersection_search_space(study)) == {"lr"}


# --- the study, prepared before the sweeper opens it --------------------------------------------------


def sweep_config(storage, metric="val/loss/total", direction="minimize", name="train"):
    return OmegaConf.create({"optimized_metric": metric, "hydra": {"sweeper": {
        "storage": storage, "study_name": name, "direction": direction}}})


@pytest.mark.parametrize("database", ["{tmp}/a/b/optuna.db", "./outputs/c/optuna.db"])
def test_study_is_created_with_its_sqlite_directory_direction_and_metric(database, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = "sqlite:///" + database.format(tmp=tmp_path)
    prepare_study(sweep_config(url, "val/track/HOTA", "maximize"))
    assert (tmp_path / database.format(tmp=tmp_path)).is_file()
    study = optuna.load_study(study_name="train", storage=url)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.user_attrs["optimized_metric"] == "val/track/HOTA"


def test_continuing_with_the_same_metric_is_accepted(tmp_path):
    url = f"sqlite:///{tmp_path}/optuna.db"
    for _ in range(2):
        prepare_study(sweep_config(url))
    assert len(optuna.get_all_study_summaries(storage=url)) == 1


@pytest.mark.parametrize(("metric", "direction"), [("val/track/HOTA", "maximize"), ("val/loss/cls", "minimize")])
def test_continuing_with_another_metric_is_refused(metric, direction, tmp_path):
    url = f"sqlite:///{tmp_path}/optuna.db"
    prepare_study(sweep_config(url))
    with pytest.raises(ConfigError, match=f"optimises val/loss/total .minimize.*optimized_metric={metric} .{direction}.*task_name"):
        prepare_study(sweep_config(url, metric, direction))


def test_refusal_is_one_message_and_exit_status_1(tmp_path, caplog):
    url = f"sqlite:///{tmp_path}/optuna.db"
    prepare_study(sweep_config(url))
    with pytest.raises(SystemExit) as exit_info:  # not an exception: Hydra would only warn about it
        PrepareStudy().on_multirun_start(sweep_config(url, "val/loss/cls"))
    assert exit_info.value.code == 1
    assert "optimized_metric=val/loss/cls" in caplog.text


def test_in_memory_study_is_left_to_the_sweeper(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prepare_study(sweep_config(None))
    assert list(tmp_path.iterdir()) == []

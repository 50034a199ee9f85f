"""The Optuna search's parts: its config, the search space, the trial-seeded sampler, the storages, the study."""

from __future__ import annotations

import pytest

optuna = pytest.importorskip("optuna", reason="the search extra: pip install -e '.[search]'")

from omegaconf import OmegaConf  # noqa: E402
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution  # noqa: E402

from scene_model.errors import ConfigError  # noqa: E402
from scene_model.runtime.search.sampler import TrialSeededTPESampler  # noqa: E402
from scene_model.runtime.search.space import search_space  # noqa: E402
from scene_model.runtime.search.storage import open_storage  # noqa: E402
from scene_model.runtime.search.study import build, open_study  # noqa: E402
from scene_model.runtime.search.sweep import trial_overrides  # noqa: E402
from tests.conftest import compose_config  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = {"lr": FloatDistribution(1e-5, 1e-3, log=True), "queries": CategoricalDistribution([10, 20, 30])}


def run_trials(study, n: int) -> list[dict]:
    """ask/tell as the sweeper does, with a made-up objective."""
    for _ in range(n):
        trial = study.ask(SPACE)
        study.tell(trial, trial.params["lr"] * trial.params["queries"])
    return [t.params for t in study.trials]


def new_study(sampler, storage=None, name="s"):
    return optuna.create_study(study_name=name, storage=storage, sampler=sampler, load_if_exists=True)


# --- config ------------------------------------------------------------------------------------


def test_search_config_keeps_its_study_in_a_dated_free_sweep_directory(tmp_path):
    cfg = compose_config(["hparams_search=optuna", f"paths.log_dir={tmp_path}", "task_name=lr_search"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.scene_model_sweeper.optuna_sweeper.OptunaSweeper"
    assert cfg.hydra.sweep.dir == f"{tmp_path}/searches/lr_search"
    assert sweeper.study_name == "lr_search"
    assert sweeper.storage == f"sqlite:///{tmp_path}/searches/lr_search/optuna.db"
    assert sweeper.direction == "minimize"
    assert sweeper.max_failure_rate == 1.0
    assert sweeper.pruner is None and sweeper.trial is None
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert set(sweeper.params) == {"optimizer.lr", "optimizer.weight_decay", "model.num_queries",
                                   "head.weights.cls", "head.weights.bbox", "head.weights.giou",
                                   "head.weights.exist"}
    assert cfg.callbacks.report_to_trial._target_ == "scene_model.runtime.search.pruning.ReportToTrial"
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
    assert "metric_directions" not in cfg and "report_to_trial" not in cfg.callbacks


def test_a_pruner_is_given_by_its_target():
    cfg = compose_config(["hparams_search=optuna", "hydra.sweeper.pruner={_target_:optuna.pruners.MedianPruner,n_warmup_steps:2}"])
    assert isinstance(build(cfg.hydra.sweeper.pruner, "hydra.sweeper.pruner"), optuna.pruners.MedianPruner)


# --- search space ----------------------------------------------------------------------------------


def test_sweep_grammar_becomes_optuna_distributions():
    space = search_space(["lr=tag(log, interval(1e-5, 1e-3))", "w=interval(0.5, 2.0)", "q=choice(10, 20, 30)",
                          "n=range(1, 10, 2)", "f=range(0.1, 0.5, 0.1)", "s=shuffle(range(1, 4))", "debug=fast"])
    assert sorted(space.distributions.pop("s").choices) == [1, 2, 3]  # shuffled: a categorical
    assert space.distributions == {
        "lr": FloatDistribution(1e-5, 1e-3, log=True), "w": FloatDistribution(0.5, 2.0),
        "q": CategoricalDistribution([10, 20, 30]), "n": IntDistribution(1, 9, step=2),
        "f": FloatDistribution(0.1, 0.4, step=0.1),
    }
    assert {key: o.input_line for key, o in space.fixed.items()} == {"debug": "debug=fast"}


def test_the_command_line_redefines_or_fixes_a_dimension():
    space = search_space(["lr=interval(1e-5, 1e-3)", "q=choice(10, 20)", "lr=tag(log, interval(1e-4, 1e-2))", "q=60"])
    assert space.distributions == {"lr": FloatDistribution(1e-4, 1e-2, log=True)}
    assert space.fixed["q"].input_line == "q=60"


def test_a_trial_runs_in_its_numbered_directory_with_its_parameters_and_fixed_values():
    study = optuna.create_study()
    space = search_space(["q=choice(10, 20)", "+data.note='a b'"])
    study.ask(space.distributions)  # trial 0
    trial = study.ask(space.distributions)
    overrides = trial_overrides(trial, space)
    assert overrides == [f"q={trial.params['q']}", "+data.note='a b'", "hydra.sweep.subdir=1", "hydra.sweeper.trial=1"]
    assert trial.user_attrs == {"+data.note": "'a b'"}


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


# --- storages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("location", ["sqlite:///{tmp}/a/b/optuna.db", "{tmp}/a/b/optuna.log"])
def test_a_study_continues_in_sqlite_and_in_a_journal_file(location, tmp_path):
    url = location.format(tmp=tmp_path)
    run_trials(new_study(TrialSeededTPESampler(seed=0), open_storage(url)), 2)
    assert (tmp_path / "a" / "b" / ("optuna.db" if url.startswith("sqlite") else "optuna.log")).is_file()
    again = optuna.load_study(study_name="s", storage=open_storage(url))
    assert isinstance(again._storage, optuna.storages.JournalStorage) == (not url.startswith("sqlite"))
    assert len(run_trials(again, 1)) == 3


@pytest.mark.parametrize(("url", "message"), [
    ("nosuchdb://host/db", "hydra.sweeper.storage: 'nosuchdb://host/db' is no database URL SQLAlchemy knows"),
    ("postgresql+nosuchdriver://host/db", "hydra.sweeper.storage: 'postgresql+nosuchdriver://host/db' is no database URL"),
    ("sqlite:////proc/no/such/optuna.db", "hydra.sweeper.storage: cannot write /proc/no"),
    ("/proc/no/such/optuna.log", "hydra.sweeper.storage: cannot write /proc/no"),
    ("mysql://user@localhost/optuna", "hydra.sweeper.storage: mysql://user@localhost/optuna needs the database driver 'MySQLdb'"),
])
def test_a_storage_url_that_cannot_be_opened_is_one_line_naming_the_key(url, message):
    with pytest.raises(ConfigError, match="^" + message.replace("+", r"\+").replace(".", r"\.")) as err:
        open_storage(url)
    assert "\n" not in str(err.value)


def test_in_memory_study_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert open_storage(None) is None
    open_study(sweeper_options(None), "val/loss/total")
    assert list(tmp_path.iterdir()) == []


# --- the study, opened by the sweeper --------------------------------------------------------------


def sweeper_options(storage, direction="minimize", name="train", pruner=None, sampler=None):
    return OmegaConf.create({"storage": storage, "study_name": name, "direction": direction, "pruner": pruner,
                             "sampler": sampler})


def test_study_is_created_with_its_direction_metric_sampler_and_pruner(tmp_path):
    url = f"sqlite:///{tmp_path}/optuna.db"
    study = open_study(sweeper_options(url, "maximize", pruner={"_target_": "optuna.pruners.MedianPruner"},
                                       sampler={"_target_": "optuna.samplers.RandomSampler", "seed": 1}), "val/track/HOTA")
    assert isinstance(study.pruner, optuna.pruners.MedianPruner) and isinstance(study.sampler, optuna.samplers.RandomSampler)
    study = optuna.load_study(study_name="train", storage=url)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.user_attrs["optimized_metric"] == "val/track/HOTA"


def test_no_pruner_prunes_nothing(tmp_path):
    study = open_study(sweeper_options(f"sqlite:///{tmp_path}/optuna.db"), "val/loss/total")
    assert isinstance(study.pruner, optuna.pruners.NopPruner)  # not optuna's default MedianPruner


def test_continuing_with_the_same_metric_is_accepted(tmp_path):
    url = f"sqlite:///{tmp_path}/optuna.db"
    for _ in range(2):
        open_study(sweeper_options(url), "val/loss/total")
    assert len(optuna.get_all_study_summaries(storage=url)) == 1


@pytest.mark.parametrize(("metric", "direction"), [("val/track/HOTA", "maximize"), ("val/loss/cls", "minimize")])
def test_continuing_with_another_metric_is_refused(metric, direction, tmp_path):
    url = f"{tmp_path}/optuna.log"
    open_study(sweeper_options(url), "val/loss/total")
    with pytest.raises(ConfigError, match=f"optimises val/loss/total .minimize.*optimized_metric={metric} .{direction}.*task_name"):
        open_study(sweeper_options(url, direction), metric)


@pytest.mark.parametrize(("pruner", "message"), [
    ({"_target_": "optuna.pruners.MedianPrunr"}, r"hydra\.sweeper\.pruner\._target_: 'optuna\.pruners\.MedianPrunr' does not exist"),
    ({"_target_": "optuna.pruners.MedianPruner", "n_warmup": 2}, r"hydra\.sweeper\.pruner: optuna\.pruners\.MedianPruner refuses its options: .*n_warmup"),
    ("median", r"hydra\.sweeper\.pruner: expected \{_target_: \.\.\.\}"),
])
def test_a_pruner_that_cannot_be_built_is_one_line_naming_the_key(pruner, message, tmp_path):
    with pytest.raises(ConfigError, match=message) as err:
        open_study(sweeper_options(f"sqlite:///{tmp_path}/optuna.db", pruner=pruner), "val/loss/total")
    assert "\n" not in str(err.value)


def test_pruning_needs_a_storage_the_jobs_reach():
    with pytest.raises(ConfigError, match="hydra.sweeper.pruner: .*hydra.sweeper.storage is null"):
        open_study(sweeper_options(None, pruner={"_target_": "optuna.pruners.MedianPruner"}), "val/loss/total")

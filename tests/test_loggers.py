"""conf/logger: MLflow, W&B (offline) and several loggers at once; the final metrics beside the hyperparameters."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger, WandbLogger
from mlflow import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from scene_model.runtime.config_loader import ConfigLoader
from scene_model.runtime.loggers import wandb_logged_in, wandb_logger
from scene_model.runtime.run import train
from scene_model.training.callbacks.hparams_summary import flat_hparams

FINAL = {"hparams/HOTA", "hparams/DetA", "hparams/AssA", "hparams/IDF1", "hparams/total"}


@pytest.mark.parametrize(
    ("choice", "kinds"),
    [
        ("mlflow", [MLFlowLogger]),
        ("wandb", [WandbLogger]),
        ("many", [TensorBoardLogger, CSVLogger, MLFlowLogger, WandbLogger]),
        ("[tensorboard,mlflow]", [TensorBoardLogger, MLFlowLogger]),
    ],
)
def test_logger_options_compose_and_build(tiny_cfg, choice, kinds, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    cfg = tiny_cfg(f"logger={choice}")
    loggers = ConfigLoader(cfg).build_logger()
    assert sorted(type(x).__name__ for x in loggers) == sorted(k.__name__ for k in kinds)
    run = Path(cfg.paths.output_dir)
    for logger in loggers:
        if isinstance(logger, MLFlowLogger):
            assert logger._tracking_uri == f"sqlite:///{cfg.paths.log_dir}/mlflow.db"
        if isinstance(logger, WandbLogger):
            assert logger._offline and Path(logger.save_dir) == run


def test_wandb_goes_online_only_with_a_project_and_a_login(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert not wandb_logged_in()
    assert wandb_logger(project="p", offline=None, save_dir=str(tmp_path))._offline
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    assert wandb_logged_in()
    assert not wandb_logger(project="p", offline=None, save_dir=str(tmp_path))._offline
    assert wandb_logger(project=None, offline=None, save_dir=str(tmp_path))._offline
    assert wandb_logger(project="p", offline=True, save_dir=str(tmp_path))._offline


def test_flat_hparams_keeps_plain_values_outside_the_plumbing():
    config = {"seed": 1, "optimizer": {"_target_": "x", "lr": 1e-4}, "data": {"train_sizes": [128], "root": None},
              "paths": {"output_dir": "o"}, "logger": {"csv": {}}}
    assert flat_hparams(config, ("paths", "hydra", "callbacks", "logger")) == {"seed": 1, "optimizer.lr": 1e-4, "data.train_sizes": "[128]", "data.root": "null"}


@pytest.mark.slow
def test_mlflow_run_holds_losses_lr_tracking_metrics_params_and_pictures(tiny_cfg):
    cfg = tiny_cfg("logger=mlflow", "debug=fast", "trainer.enable_progress_bar=false")
    train(cfg)
    client = MlflowClient(tracking_uri=f"sqlite:///{cfg.paths.log_dir}/mlflow.db")
    experiment = client.get_experiment_by_name(cfg.task_name)
    (run,) = client.search_runs([experiment.experiment_id])
    metrics = set(run.data.metrics)
    for name in ("train/loss/total_step", "train/loss/giou_step", "val/loss/total", "val/loss/giou", "val/track/HOTA", "val/track/IDF1", *FINAL):
        assert name in metrics, (name, sorted(metrics))
    assert any(name.startswith("lr-") for name in metrics), sorted(metrics)
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss/total_step")]
    assert steps == sorted(set(steps)) and len(steps) == cfg.trainer.limit_train_batches  # one a step
    lr = [value for key, value in run.data.params.items() if key.endswith("optimizer/lr") or key.endswith("optimizer.lr")]
    assert lr and all(float(v) == cfg.optimizer.lr for v in lr), sorted(run.data.params)
    assert run.data.tags["run_dir"] == cfg.paths.output_dir
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    assert any(tag in a for a in artifacts for tag in ("val#predictions", "val~predictions", "val/predictions")), artifacts
    assert any(tag in a for a in artifacts for tag in ("val#tracks", "val~tracks", "val/tracks")), artifacts


@pytest.mark.slow
def test_wandb_offline_run_writes_its_files(tiny_cfg, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = tiny_cfg("logger=wandb", "debug=fast", "trainer.enable_progress_bar=false")
    train(cfg)
    (run_dir,) = (Path(cfg.paths.output_dir) / "wandb").glob("offline-run-*")
    assert len(list(run_dir.glob("run-*.wandb"))) == 1  # the run's history, for `wandb sync`
    images = run_dir / "files" / "media" / "images" / "val"
    assert list(images.glob("predictions_*.png")) and list(images.glob("tracks_*.png"))


@pytest.mark.slow
def test_tensorboard_hparams_session_lists_the_final_tracking_metrics(tiny_cfg):
    cfg = tiny_cfg("debug=fast", "trainer.enable_progress_bar=false", "optimizer.lr=0.00031")
    train(cfg)
    events = EventAccumulator(str(Path(cfg.paths.output_dir) / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    content = events.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in experiment.metric_infos} == FINAL
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert session.hparams["optimizer.lr"].number_value == pytest.approx(0.00031)
    assert "model.num_queries" in session.hparams and "paths.output_dir" not in session.hparams
    assert FINAL <= set(events.Tags()["scalars"])

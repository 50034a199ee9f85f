"""The way of one run: build everything from the config, fit, evaluate, return the optimised metric."""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Mapping
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from lightning.pytorch.strategies import StrategyRegistry
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from scene_model.errors import ConfigError, OutputError, SceneModelError
from scene_model.outputs import cannot_write, write_os_error, write_text_atomically
from scene_model.runtime import run_dirs  # also registers the claim_dir resolver of conf/hydra
from scene_model.runtime.checkpoints import load_checkpoint_file
from scene_model.runtime.config_loader import ConfigLoader
from scene_model.runtime.config_validation import validate_config
from scene_model.runtime.console import quiet_lightning
from scene_model.runtime.ranks import RANKS, first_line, watching_ranks
from scene_model.runtime.signals import STOP, signal_name, stop_signals
from scene_model.runtime.slurm import cluster_plugins, resume_ckpt_path, submitted_to_slurm
from scene_model.runtime.summary import run_summary
from scene_model.runtime.threads import configure_threads
from scene_model.runtime.write_errors import output_errors
from scene_model.training.weights import restore_weights

log = logging.getLogger(__name__)


@rank_zero_only
def save_resolved_config(cfg: DictConfig, output_dir: Path) -> None:
    write_text_atomically(output_dir / "config_resolved.yaml", OmegaConf.to_yaml(cfg, resolve=True), "the run config")


def multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def start_method(strategy: object) -> str:
    """How the configured ``trainer.strategy`` starts its processes: the ``start_method`` of a registered
    name (``ddp_spawn`` -> spawn) or of a strategy's config, else Lightning's default, "popen" (the
    script is run again per device)."""
    if isinstance(strategy, str):
        entry = StrategyRegistry[strategy] if strategy in StrategyRegistry else {}
        return entry.get("init_params", {}).get("start_method", "popen")
    if isinstance(strategy, Mapping):
        return strategy.get("start_method") or "popen"
    return "popen"


def check_launch(trainer: L.Trainer, strategy: object) -> None:
    """Refuse what fails later in confusing ways: Lightning re-running this script per device
    inside a local sweep (each copy would run the whole sweep again)."""
    environment = getattr(trainer.strategy, "cluster_environment", None)
    reruns_script = (
        trainer.num_devices > 1
        and start_method(strategy) == "popen"
        and not (environment is not None and environment.creates_processes_externally)
    )
    if multirun() and reruns_script:
        raise ConfigError(
            "trainer.strategy=ddp with several devices re-runs train.py per device, which a local sweep (-m) "
            "does not support; use trainer.strategy=ddp_spawn, or hydra/launcher=slurm (one task per device)"
        )


def refuse_to_overwrite(trainer: L.Trainer, ckpt_path: str | None) -> None:
    """A fresh fit must not write over the checkpoints of an earlier run in the same directory. (From
    ``train.py`` the Hydra callback ``run_dirs.CheckRunDir`` refuses it first, before Hydra writes the
    job's ``.hydra/`` files; this covers the other ways in: a sweep's job, a config composed in code.)"""
    if ckpt_path:
        return
    for callback in trainer.checkpoint_callbacks:
        directory = Path(callback.dirpath) if getattr(callback, "dirpath", None) else None
        if directory is not None and run_dirs.has_checkpoints(directory):
            raise ConfigError(run_dirs.overwrite_message(directory))


def train(cfg: DictConfig) -> float | None:
    """Fit (``train``) or validate, then test (``test``); returns the value of ``optimized_metric``
    after fitting or validating."""
    quiet_lightning()
    validate_config(cfg)
    if not cfg.get("train", True) and not cfg.get("ckpt_path") and not cfg.get("eval", {}).get("untrained", False):
        raise ConfigError(
            "ckpt_path: train=false evaluates a checkpoint and none was given; add "
            "ckpt_path=outputs/runs/.../checkpoints/last.ckpt (or eval.untrained=true to score an untrained model)"
        )
    with stop_signals(enabled=not submitted_to_slurm()):
        if cfg.get("seed") is not None:
            L.seed_everything(cfg.seed, workers=True)
        configure_threads(cfg.training.get("num_threads"), int(cfg.data.get("num_workers", 0)))
        loader = ConfigLoader(cfg)
        datamodule = loader.build_datamodule()
        module = loader.build_lit_module()
        trainer = loader.build_trainer(loader.build_callbacks(), loader.build_logger(), plugins=cluster_plugins())
        check_launch(trainer, cfg.trainer.get("strategy"))
        ckpt_path = cfg.get("ckpt_path")
        if cfg.get("train", True):
            ckpt_path = resume_ckpt_path(ckpt_path, trainer.checkpoint_callback)
            refuse_to_overwrite(trainer, ckpt_path)
        save_resolved_config(cfg, Path(cfg.paths.output_dir))

        evaluated = ckpt_path
        with watching_ranks(trainer, cfg.paths.output_dir), output_errors(trainer, cfg.paths.output_dir):
            if cfg.get("train", True):
                trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
                ckpt_path = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else None
                ckpt_path = ckpt_path or None
            else:
                # Evaluate only: val losses, and through TrackingEvaluator the val split tracked and scored
                # (val/track/HOTA, ...) and eval.submit_split written for submission.
                if ckpt_path:
                    restore_weights(module, load_checkpoint_file(ckpt_path), ckpt_path, loader.resolved_config())
                    ckpt_path = None  # the module holds the weights: a test below scores them as they are
                else:
                    log.warning("train=false without ckpt_path (eval.untrained=true): evaluating an untrained model")
                trainer.validate(module, datamodule=datamodule)
            # Read before testing: trainer.test starts callback_metrics afresh, without the val/ metrics.
            value = optimized_value(cfg.get("optimized_metric"), trainer.callback_metrics)
            summary = run_summary(trainer, cfg.paths.output_dir, cfg.get("train", True), evaluated, OmegaConf.select(cfg, "eval.every_n_epochs"))
            if cfg.get("test", False):
                trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path)
        if trainer.is_global_zero:
            for line in summary:
                log.info(line)
    return value


def optimized_value(metric_name: str | None, metrics: dict) -> float | None:
    """The finite value of ``metric_name``, else None: the search records a trial without one as failed
    (``search.sweep.tell``), and a diverged run says so here."""
    if not metric_name:
        return None
    if metric_name not in metrics:
        log.warning(f"optimized_metric {metric_name!r} was not logged; logged: {sorted(metrics)}")
        return None
    value = float(metrics[metric_name])
    log.info(f"{metric_name} = {value:.6g}")
    if not math.isfinite(value):
        log.warning(f"optimized_metric {metric_name!r} is {value}: the run diverged")
        return None
    return value


def user_error(err: BaseException) -> SceneModelError | None:
    """The user-fixable error behind ``err``: itself, the one a constructor raised inside
    ``hydra.utils.instantiate``, or a refused write (disk full, read-only, no permission) as OutputError;
    None for anything else (a bug: keep its traceback)."""
    if isinstance(err, SceneModelError):
        return err
    if isinstance(err, InstantiationException) and isinstance(err.__cause__, SceneModelError):
        return err.__cause__
    refused = write_os_error(err)
    if refused is not None:
        return OutputError(cannot_write(refused.filename or "a file of the run", refused))
    return None


def one_line(err: SceneModelError) -> str:
    """The message of ``err`` without the worker traceback that torch's DataLoader puts into it."""
    text = str(err)
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = text.strip().splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return f"{type(err).__name__}: {text}"


def stopped_line(cfg: DictConfig, signum: int) -> str:
    """What a run stopped by a signal says: where it stopped, what was kept and how to go on."""
    output_dir = Path(cfg.paths.output_dir)
    last = output_dir / "checkpoints" / "last.ckpt"
    kept = f"{last} is the last checkpoint; resume with ckpt_path=last hydra.run.dir={output_dir}" if last.is_file() else (
        "no checkpoint was written yet"
    )
    return f"stopped by {signal_name(signum)}: {kept}"


def main(cfg: DictConfig) -> float | None:
    """Entry point body: a user-fixable error is printed as one message, without a traceback, and
    the run exits with 1; a run stopped by SIGTERM or SIGINT exits with 128 + the signal number.
    Both lines are logged as errors: on stderr (its last line, after the progress bar, which
    ``callbacks.ProgressBarClosedOnStop`` closed) and in ``train.log`` (``conf/hydra/default.yaml``).

    In a sweep every error is raised on to the sweeper (which records the job as failed and, for a
    search, goes on); the job's log keeps the traceback of an unexpected one. A signal stops the sweep.
    """
    STOP.received = None
    RANKS.reset()
    try:
        return train(cfg)
    except BaseException as err:
        sys.stdout.flush()  # what was printed before the line comes before it
        if STOP.exit_code is not None:
            log.error(stopped_line(cfg, STOP.received))
            raise SystemExit(STOP.exit_code) from None
        if not isinstance(err, Exception):
            raise
        # In a run of several processes: the failure of another rank is the cause (this rank's collective
        # failed because of it); this rank's own failure is told to the others. Its children are stopped.
        lost = RANKS.lost_rank(err)
        found = lost or user_error(err)
        if lost is None:
            RANKS.report(one_line(found) if found is not None else first_line(err))
        RANKS.stop_children()
        if found is None:
            if multirun():
                log.exception("The run failed")
            raise
        line = one_line(found)
        if lost is None and RANKS.several:
            line += f" (rank {RANKS.rank} of {RANKS.world_size})"
        log.error(line)
        if multirun():
            raise  # let the sweeper record the failed job
        raise SystemExit(1) from None

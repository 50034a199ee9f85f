"""The same Optuna search with and without a MedianPruner: wall time, trials pruned, best value.

Each search is ``python train.py -m hparams_search=optuna`` in a subprocess, one after the other, each
in a study of its own under ``outputs/bench/search_pruning/`` (kept, to be looked at as docs/scale.md
shows): 12 trials over the default space's learning rate, weight decay and number of queries (the loss
weights fixed at their defaults, so that ``val/loss/total`` compares how well trials learn), the default
sampler seed, debug-sized trials (a tiny model on a small synthetic data set, 16 epochs of six steps, no
tracking evaluation, so that an epoch's steps are most of its cost, as in a real run). With the sampler's seed and trial-seeded draws both searches try the same
parameters in their first 10 trials (TPE's random start); the pruned one stops a trial after a
validation, from the second on, where its ``val/loss/total`` is above the median of the completed
trials at that epoch.

    python -m bench search_pruning          # make bench ARGS=search_pruning
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import optuna
from omegaconf import OmegaConf

from bench import Row
from bench._training import run_config
from scene_model.data.synthetic import SyntheticSpec, ensure_synthetic

REPO = Path(__file__).resolve().parents[1]
PRUNER = "{_target_:optuna.pruners.MedianPruner,n_startup_trials:2,n_warmup_steps:1}"
OUT = REPO / "outputs" / "bench" / "search_pruning"
TRIAL = [  # debug-sized: a tiny model, 6 training steps an epoch, one validation batch, no tracking evaluation
    f"data.root={REPO}/data/bench_search", "data.synthetic.num_train=4", "data.synthetic.num_val=1", "data.synthetic.num_test=1",
    "data.synthetic.num_frames=16", "data.synthetic.sizes=[[192,108],[160,90]]", "data.extra_train_sets=0",
    "data.train_stride=3", "data.clip_len=3", "data.train_sizes=[64]", "data.eval_size=64", "data.num_workers=0",
    "model.d_model=32", "model.dim_feedforward=64", "model.num_encoder_layers=1", "model.num_decoder_layers=2",
    "trainer.accelerator=cpu", "trainer.limit_train_batches=6", "trainer.limit_val_batches=1",
    "trainer.num_sanity_val_steps=0", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
    "eval.every_n_epochs=0", "viz.max_frames=1",
    "head.weights.cls=2.0", "head.weights.bbox=5.0", "head.weights.giou=2.0", "head.weights.exist=1.0",
]
OUTCOME = re.compile(r"Trial (\d+) (complete|pruned): (\S+)")


def make_data(log_dir: Path) -> None:
    """Generate the data set before the clock starts (the first trial would, in the first search only)."""
    cfg = run_config(TRIAL, log_dir)
    ensure_synthetic(Path(cfg.data.root), SyntheticSpec.from_dict(OmegaConf.to_container(cfg.data.synthetic, resolve=True)))


def search(log_dir: Path, name: str, trials: int, epochs: int, *extra: str) -> tuple[float, dict[str, list[float]]]:
    """Seconds of one search, and the values its trials returned, by outcome."""
    command = [sys.executable, "train.py", "-m", "hparams_search=optuna", f"paths.log_dir={log_dir}", f"task_name={name}",
               f"hydra.sweeper.n_trials={trials}", f"trainer.max_epochs={epochs}", *TRIAL, *extra]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    values: dict[str, list[float]] = {"complete": [], "pruned": []}
    for _, outcome, value in OUTCOME.findall(result.stdout):
        values[outcome].append(float(value))
    return seconds, values


def epochs_trained(name: str) -> int:
    """Validations reported by the trials of study ``name``: the epochs it trained, whatever the machine's load."""
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{OUT}/searches/{name}/optuna.db")
    return sum(len(t.intermediate_values) for t in study.trials)


def run(quick: bool) -> list[Row]:
    trials, epochs = (4, 3) if quick else (12, 16)
    shutil.rmtree(OUT, ignore_errors=True)
    make_data(OUT)
    plain_s, plain = search(OUT, "unpruned", trials, epochs)
    pruned_s, pruned = search(OUT, "pruned", trials, epochs, f"hydra.sweeper.pruner={PRUNER}")
    best, pruned_best = min(plain["complete"]), min(pruned["complete"])
    spread = statistics.stdev(plain["complete"])
    note = f"{trials} trials x {epochs} epochs, seed 42"
    return [
        Row("search_pruning", "unpruned search", plain_s, "s", note),
        Row("search_pruning", "pruned search (MedianPruner)", pruned_s, "s", f"{len(pruned['pruned'])} of {trials} trials pruned; studies in {OUT.relative_to(REPO)}"),
        Row("search_pruning", "pruned / unpruned wall time", pruned_s / plain_s, "x", "goal: <= 0.6"),
        Row("search_pruning", "pruned / unpruned epochs trained", epochs_trained("pruned") / epochs_trained("unpruned"), "x",
            f"{epochs_trained('pruned')} / {epochs_trained('unpruned')}"),
        Row("search_pruning", "best val/loss/total, unpruned", best, "", f"values {min(plain['complete']):.4g}..{max(plain['complete']):.4g}"),
        Row("search_pruning", "best val/loss/total, pruned", pruned_best, "", f"{len(pruned['complete'])} trials completed"),
        Row("search_pruning", "(pruned best - unpruned best) / spread", (pruned_best - best) / spread, "x",
            f"spread: std of the unpruned trials' values, {spread:.3g}"),
    ]

"""Framework overhead: seconds per training step through our Lightning Trainer against a plain PyTorch loop.

Both train copies of the same model, built from the default run config (``python train.py``; and
the same with a tiny model, where a per-step cost of the framework shows more), on the
same cached batches (collated once, fed by a plain iterable: no loading cost), with the same
optimiser, scheduler and gradient clipping. The Trainer is built as run.train builds it: our
Lightning module, every configured callback and logger, logging every ``trainer.log_every_n_steps``
steps and the progress bar. The two take turns step by step in one run: each time Lightning asks
the iterable for its next batch, one plain step runs (and is timed on its own), so a Lightning step
is the time from one request to the next, less the plain step between them.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from bench import Row
from bench._training import CachedData, PlainLoop, cached_batches, lightning_trainer, run_config
from scene_model.data.types import SceneBatch
from scene_model.runtime.config_loader import ConfigLoader

WARMUP = 3


class Interleaved:
    """The batches for Lightning, with one timed plain step run before each batch is handed over."""

    def __init__(self, batches: Sequence[SceneBatch], plain: PlainLoop, steps: int, device: torch.device) -> None:
        self.batches, self.plain, self.steps, self.device = batches, plain, steps, device
        self.lightning: list[float] = []
        self.plain_seconds: list[float] = []

    def __iter__(self) -> Iterator[SceneBatch]:
        handed_over: float | None = None
        for i in range(self.steps + 1):  # one more: Lightning fetches a batch ahead
            if handed_over is not None:
                self.lightning.append(time.perf_counter() - handed_over)
            batch = self.batches[i % len(self.batches)]
            start = time.perf_counter()
            self.plain.step(batch.to(self.device))
            _synchronize(self.device)
            self.plain_seconds.append(time.perf_counter() - start)
            handed_over = time.perf_counter()
            yield batch


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(overrides: Sequence[str], steps: int, num_batches: int) -> dict[str, list[float]]:
    """Per-step seconds of the Lightning run and of the plain loop, taking turns in one run."""
    with tempfile.TemporaryDirectory(prefix="bench_overhead_") as tmp:
        cfg = run_config(overrides, Path(tmp))
        torch.manual_seed(cfg.seed)
        batches = cached_batches(cfg, num_batches)
        module = ConfigLoader(cfg).build_lit_module()
        trainer = lightning_trainer(cfg, max_steps=steps)
        device = trainer.strategy.root_device
        plain = PlainLoop(module, cfg, total_steps=steps)
        plain.module.to(device)
        feed = Interleaved(batches, plain, steps, device)
        with contextlib.redirect_stdout(io.StringIO()):  # the progress bar still draws, out of sight
            trainer.fit(module, datamodule=CachedData(feed))
    return {"lightning": feed.lightning[WARMUP:steps], "plain": feed.plain_seconds[WARMUP:steps]}


TINY = ["model.d_model=32", "model.dim_feedforward=64", "model.num_encoder_layers=1", "model.num_decoder_layers=2",
        "model.num_queries=8", "data.train_sizes=[64]"]


def run(quick: bool) -> list[Row]:
    rows = []
    for label, overrides, steps in (("default config", [], 5 if quick else 12), ("tiny model", TINY, 10 if quick else 40)):
        seconds = measure(overrides, steps + WARMUP, num_batches=4 if quick else 8)
        lightning, plain = sum(seconds["lightning"]), sum(seconds["plain"])
        count = len(seconds["plain"])
        per_step = [a / b for a, b in zip(seconds["lightning"], seconds["plain"], strict=True)]
        note = f"{count} steps each after {WARMUP} warm-up, taking turns per step"
        rows += [
            Row("overhead", f"{label}: Lightning Trainer step", lightning / count, "s/step", note),
            Row("overhead", f"{label}: plain PyTorch step", plain / count, "s/step", note),
            Row("overhead", f"{label}: Lightning / plain", lightning / plain, "x", "goal <= 1.05"),
            Row("overhead", f"{label}: median of per-step ratios", statistics.median(per_step), "x", "less sensitive to load spikes"),
        ]
    return rows

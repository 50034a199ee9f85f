"""The loss path: the share of a training step spent in matching and losses, and host syncs per step.

The share is timed on a plain PyTorch loop over cached batches of the default config (the step,
and HeadAdapter.losses_and_assignment with the matcher inside it, and the matcher alone). Host syncs are
counted with bench._syncs.SyncCounter through whole training steps of our Lightning Trainer (our
module, callbacks and loggers, as run.train builds them): a step that writes the logs (every
``trainer.log_every_n_steps``-th) adds the logged values' copies, so those steps are reported apart.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from bench import Row
from bench._syncs import SyncCounter
from bench._training import CachedData, Cycle, PlainLoop, cached_batches, lightning_trainer, run_config
from scene_model.data.types import SceneBatch
from scene_model.runtime.config_loader import ConfigLoader


class Timed:
    """Wraps a callable and adds up the seconds spent in it."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def loss_share(overrides: Sequence[str], steps: int) -> dict[str, float]:
    """Seconds of ``steps`` plain steps, of losses_and_assignment (matching included) and of the matcher in them."""
    with tempfile.TemporaryDirectory(prefix="bench_loss_") as tmp:
        cfg = run_config(overrides, Path(tmp))
        torch.manual_seed(cfg.seed)
        batches = cached_batches(cfg, min(steps, 8))
        plain = PlainLoop(ConfigLoader(cfg).build_lit_module(), cfg, total_steps=steps + 1)
    adapter = plain.module.head_adapter
    plain.step(batches[0])  # warm-up
    adapter.losses_and_assignment = loss = Timed(adapter.losses_and_assignment)
    adapter.matcher.match = match = Timed(adapter.matcher.match)
    start = time.perf_counter()
    for batch in Cycle(batches, steps):
        plain.step(batch)
    return {"step": time.perf_counter() - start, "loss": loss.seconds, "match": match.seconds}


class StepSyncs(L.Callback):
    """Host syncs of every training step (batch start to batch start), the batch's host fields and the
    optimiser's step counters marked as host tensors."""

    def __init__(self, counter: SyncCounter) -> None:
        self.counter = counter
        self.per_step: list[int] = []
        self.sites: list[Counter[str]] = []
        self._seen, self._sites = 0, Counter()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: SceneBatch, batch_idx: int) -> None:
        self._close_step()
        self.counter.mark_host([batch.targets, batch.frame_indices, batch.orig_sizes, batch.image_sizes])
        for optimizer in trainer.optimizers:
            self.counter.mark_host(state["step"] for state in optimizer.state.values() if "step" in state)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close_step()

    def _close_step(self) -> None:
        count, sites = self.counter.count, self.counter.sites
        if self._seen or count:
            self.per_step.append(count - self._seen)
            self.sites.append(sites - self._sites)
        self._seen, self._sites = count, Counter(sites)


def step_syncs(overrides: Sequence[str], steps: int) -> tuple[StepSyncs, int]:
    """Sync counts of ``steps`` Lightning training steps (the first one dropped: set-up) and the logging interval."""
    with tempfile.TemporaryDirectory(prefix="bench_syncs_") as tmp:
        cfg = run_config(overrides, Path(tmp))
        torch.manual_seed(cfg.seed)
        batches = cached_batches(cfg, min(steps, 4))
        module = ConfigLoader(cfg).build_lit_module()
        counter = SyncCounter()
        recorder = StepSyncs(counter)
        trainer = lightning_trainer(cfg, max_steps=steps, extra_callbacks=[recorder])
        with contextlib.redirect_stdout(io.StringIO()), counter:
            trainer.fit(module, datamodule=CachedData(Cycle(batches, steps + 1)))
    recorder.per_step, recorder.sites = recorder.per_step[1:], recorder.sites[1:]
    return recorder, int(cfg.trainer.log_every_n_steps)


def run(quick: bool) -> list[Row]:
    share = loss_share([], steps=3 if quick else 10)
    recorder, every = step_syncs([], steps=12 if quick else 22)
    steps = list(zip(recorder.per_step, recorder.sites, strict=True))
    plain_steps = [n for n, sites in steps if not _logging(sites)]
    logging_steps = [n for n, sites in steps if _logging(sites)] or [0]
    usual = Counter()
    for _, sites in steps:
        if not _logging(sites):
            usual.update(sites)
    where = ", ".join(f"{site} x{n / max(len(plain_steps), 1):.3g}" for site, n in usual.most_common())
    return [
        Row("loss_path", "matching + losses (losses_and_assignment) / step", share["loss"] / share["step"], "share", "plain loop, default config"),
        Row("loss_path", "matcher alone / step", share["match"] / share["step"], "share", "Hungarian matching incl. its cost matrices"),
        Row("loss_path", "host syncs per training step", max(plain_steps, default=0), "syncs",
            f"Lightning step incl. callbacks; from: {where or 'none'}"),
        Row("loss_path", "host syncs on a logging step", max(logging_steps), "syncs",
            f"every {every}th step (trainer.log_every_n_steps): the logged values are read"),
    ]


def _logging(sites: Counter[str]) -> bool:
    """A step where Lightning wrote the logs: the only steps where Lightning itself reads tensors."""
    return any(site.startswith("lightning/") for site in sites)

"""Throughput: clips per second of the default run config (``python train.py``), loading included.

On a CPU: the default config (synthetic data, resnet18, clip_len 4, batch 2). With a GPU (torch.cuda
is available): ``experiment=dancetrack_r50`` with ``trainer.precision=bf16-mixed`` and
``module.channels_last=true`` as well, its clips per second, peak GPU memory and whether the loader
keeps up (the share of a step spent waiting for the next batch); the data come from
``$DANCETRACK_ROOT`` when set, else from synthetic 1920x1080 sequences.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import lightning as L
import torch

from bench import Row
from bench._training import StepTimer, lightning_trainer, run_config
from scene_model.runtime.config_loader import ConfigLoader
from scene_model.runtime.threads import available_cpus, configure_threads

WARMUP = 2


class TimedBatches:
    """The train loader, each ``next`` timed: the seconds the training loop waits for every batch."""

    def __init__(self, loader: Iterable, seconds: list[float]) -> None:
        self.loader, self.seconds = loader, seconds

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator:
        batches = iter(self.loader)
        while True:
            start = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                return
            finally:
                self.seconds.append(time.perf_counter() - start)
            yield batch


def measure(overrides: Sequence[str], steps: int, threads: int | None = None) -> dict[str, float]:
    """Clips/s of a short fit; ``threads``: torch's threads (None: as a run sets them, see training.threads)."""
    with tempfile.TemporaryDirectory(prefix="bench_throughput_") as tmp:
        cfg = run_config(overrides, Path(tmp))
        L.seed_everything(cfg.seed)
        configure_threads(threads if threads is not None else cfg.training.get("num_threads"), int(cfg.data.num_workers))
        loader = ConfigLoader(cfg)
        steps_timer, waits = StepTimer(), []
        trainer = lightning_trainer(cfg, max_steps=steps, extra_callbacks=[steps_timer])
        datamodule = loader.build_datamodule()
        train_loader = datamodule.train_dataloader
        datamodule.train_dataloader = lambda: TimedBatches(train_loader(), waits)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        with contextlib.redirect_stdout(io.StringIO()):
            trainer.fit(loader.build_lit_module(), datamodule=datamodule)
        seconds = sum(steps_timer.seconds[WARMUP:])
        measured = len(steps_timer.seconds[WARMUP:])
        return {
            "clips/s": measured * int(cfg.data.batch_size) / seconds,
            "wait share": sum(waits[WARMUP + 1: WARMUP + 1 + measured]) / seconds,
            "peak GiB": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan"),
            "steps": measured,
        }


def gpu_overrides() -> list[str]:
    root = os.environ.get("DANCETRACK_ROOT")
    # Without DanceTrack: synthetic 1080p sequences loaded as conf/data/dancetrack.yaml loads its data.
    data = [f"data.root={root}"] if root else [
        "data=synthetic", "data.root=data/bench_synthetic_1080p", "data.synthetic.sizes=[[1920,1080]]",
        "data.train_sizes=[800]", "data.max_size=1536", "data.clip_len=5", "data.batch_size=1",
        "data.num_workers=8", "data.pin_memory=true",
    ]
    return ["experiment=dancetrack_r50", *data, "trainer.precision=bf16-mixed", "module.channels_last=true", "model.backbone.weights=null"]


def run(quick: bool) -> list[Row]:
    steps = 6 if quick else 14
    default_threads = torch.get_num_threads()
    cpu = measure(["trainer.accelerator=cpu"], steps)
    workers = int(run_config([], Path(tempfile.gettempdir())).data.num_workers)
    # The same config with torch's own thread count beside the loader workers (what a run did before
    # threads were shared out): on a small CPU the two oversubscribe the cores.
    crowded = measure(["trainer.accelerator=cpu"], steps, threads=available_cpus())
    note = f"default config (synthetic, resnet18, clip_len 4, batch 2, {workers} loader worker(s)), {cpu['steps']} steps"
    torch.set_num_threads(default_threads)
    rows = [
        Row("throughput", "CPU: training clips/s", cpu["clips/s"], "clips/s", note + ", threads as a run sets them"),
        Row("throughput", "CPU: share of step waiting for data", cpu["wait share"], "share", "loader keeps up when near 0"),
        Row("throughput", "CPU: clips/s with torch threads = all CPUs", crowded["clips/s"], "clips/s",
            f"{available_cpus()} threads beside {workers} worker(s)"),
        Row("throughput", "CPU: threads shared out vs all CPUs", cpu["clips/s"] / crowded["clips/s"], "x", "same run, same steps"),
    ]
    if not torch.cuda.is_available():
        return rows + [Row("throughput", "GPU rows (dancetrack_r50, bf16-mixed, channels_last)", float("nan"), "",
                           "not measured: no GPU available (run `make bench ARGS=throughput` on a GPU machine)")]
    gpu = measure(gpu_overrides(), steps * 3)
    name = torch.cuda.get_device_name()
    return rows + [
        Row("throughput", "GPU: training clips/s", gpu["clips/s"], "clips/s", f"dancetrack_r50, bf16-mixed, channels_last, {name}"),
        Row("throughput", "GPU: peak memory", gpu["peak GiB"], "GiB", "torch.cuda.max_memory_allocated"),
        Row("throughput", "GPU: share of step waiting for data", gpu["wait share"], "share", "loader keeps up when near 0"),
    ]

"""Training-step time in float32 and in bf16 (``trainer.precision``), taking turns in one run.

Two plain loops (``bench._training.PlainLoop``: the module's own forward and loss, backward, clipping,
optimiser, scheduler) train copies of the default model on the same cached batches, one in float32
(``32-true``) and one under bf16 autocast (``bf16-mixed``, with the optimiser a bf16 run builds: unfused
with gradient clipping), step by step in turn, at one torch thread and at the run's (the CPUs).
``trainer.precision=auto`` picks bf16 where the machine runs it natively (``training.precision``); the
last row says what it picks here.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from bench import Row
from bench._measure import interleaved_seconds
from bench._training import PlainLoop, cached_batches, run_config
from scene_model.runtime.config_loader import ConfigLoader
from scene_model.training.precision import machine_precision

WARMUP = 2
PRECISIONS = ("32-true", "bf16-mixed")


def run(quick: bool) -> list[Row]:
    rows = []
    default_threads = torch.get_num_threads()
    for threads in dict.fromkeys((1, default_threads)):
        torch.set_num_threads(threads)
        try:
            rows += measure(4 if quick else 16, threads)
        finally:
            torch.set_num_threads(default_threads)
    return rows + [Row("precision", f"trainer.precision=auto here: {machine_precision('cpu')}", 1.0, "", "on the CPU of this machine")]


def measure(steps: int, threads: int) -> list[Row]:
    """float32 and bf16 training steps taking turns, ``steps`` each, at ``threads`` torch threads."""
    with tempfile.TemporaryDirectory(prefix="bench_precision_") as tmp:
        loops, batches = {}, []
        for name in PRECISIONS:
            cfg = run_config([f"trainer.precision={name}", "trainer.accelerator=cpu"], Path(tmp) / name)
            torch.manual_seed(cfg.seed)
            batches = batches or cached_batches(cfg, 4)
            loops[name] = PlainLoop(ConfigLoader(cfg).build_lit_module(), cfg, total_steps=steps + WARMUP)
        for i in range(WARMUP):
            for loop in loops.values():
                loop.step(batches[i % len(batches)])
        taken = dict.fromkeys(PRECISIONS, 0)

        def one_step(name: str):
            def step() -> None:
                loops[name].step(batches[taken[name] % len(batches)])
                taken[name] += 1

            return step

        seconds = interleaved_seconds({name: one_step(name) for name in PRECISIONS}, rounds=steps)
    fp32, bf16 = (seconds[name] / steps for name in PRECISIONS)
    note = f"default config, {steps} steps each after {WARMUP} warm-up, taking turns"
    where = f"{threads} thread{'s' if threads > 1 else ''}"
    return [
        Row("precision", f"training step, float32 (32-true), {where}", fp32, "s/step", note),
        Row("precision", f"training step, bf16 autocast (bf16-mixed), {where}", bf16, "s/step", note),
        Row("precision", f"float32 / bf16 step time, {where}", fp32 / bf16, "x", "the speed-up of bf16; goal >= 1.4 where bf16 is native"),
    ]

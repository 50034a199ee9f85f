"""Epoch time: one epoch of the default run config (``python train.py``) through ``run.train``,
tracking evaluation included, split into its training part and its validation part (losses, the
pictures and the tracking evaluation of the val split), and what the validation runs the model on:
windows decoded per val window (one forward gives the losses, the pictures and the tracks) and frames
encoded per val frame (consecutive windows share a frame, encoded once), counted.

The training part is cut to a few steps (``trainer.limit_train_batches``) so that the validation
part, the same whole val split as in ``make train``, is a visible share of it.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from pathlib import Path

import lightning as L

from bench import Row
from bench._training import run_config
from scene_model.runtime.run import train

MARKS: dict[str, float] = {}


class EpochTimer(L.Callback):
    """Marks the start of the training epoch, of validation and its end in ``MARKS`` (added as the
    last callback, so every other callback's epoch-end work comes before the end mark)."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        MARKS["train"] = time.perf_counter()
        MARKS["steps"] = len(trainer.datamodule.train_dataloader())  # a whole epoch's, not the limited count

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        MARKS["val"] = time.perf_counter()
        model = pl_module.model
        decode, encode_frames = model.decode, model.encode_frames
        MARKS["windows_decoded"] = MARKS["frames_encoded"] = 0

        def counted_decode(clip, *args, **kwargs):
            MARKS["windows_decoded"] += clip.memory.shape[0]
            return decode(clip, *args, **kwargs)

        def counted_encode(frames, *args, **kwargs):
            MARKS["frames_encoded"] += frames.shape[0]
            return encode_frames(frames, *args, **kwargs)

        model.decode, model.encode_frames = counted_decode, counted_encode

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        MARKS["end"] = time.perf_counter()
        MARKS["diagnostics"] = sum(getattr(c, "diagnostics_seconds", 0.0) for c in trainer.callbacks)
        del pl_module.model.decode, pl_module.model.encode_frames  # the class's own again
        split = trainer.datamodule.eval_split()
        MARKS["val_windows"] = len(trainer.datamodule.datasets["val"])
        MARKS["val_frames"] = sum(record.info.length for record in split.sequences)


def measure(train_steps: int) -> dict[str, float]:
    overrides = [
        f"trainer.limit_train_batches={train_steps}", "trainer.max_epochs=1", "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false", "+callbacks.epoch_timer._target_=bench.epoch.EpochTimer",
    ]
    MARKS.clear()
    with tempfile.TemporaryDirectory(prefix="bench_epoch_") as tmp:
        cfg = run_config(overrides, Path(tmp))
        with contextlib.redirect_stdout(io.StringIO()):
            train(cfg)
    return {
        "train": MARKS["val"] - MARKS["train"], "val": MARKS["end"] - MARKS["val"], "epoch": MARKS["end"] - MARKS["train"],
        "diagnostics": MARKS["diagnostics"], "steps": MARKS["steps"],
        **{k: MARKS[k] for k in ("windows_decoded", "frames_encoded", "val_windows", "val_frames")},
    }


def run(quick: bool) -> list[Row]:
    steps = 4 if quick else 20
    seconds = measure(steps)
    note = f"default config, {steps} training steps, the whole val split"
    full_epoch = seconds["train"] * seconds["steps"] / steps + seconds["val"]
    return [
        Row("epoch", "epoch (training + validation + tracking evaluation)", seconds["epoch"], "s", note),
        Row("epoch", "training part", seconds["train"], "s", f"{steps} steps"),
        Row("epoch", "validation part (losses, pictures, tracking, HOTA)", seconds["val"], "s", "val split: 2 x 100 frames"),
        Row("epoch", "forwards per val window (losses, pictures, tracks)", seconds["windows_decoded"] / seconds["val_windows"], "x",
            f"{seconds['windows_decoded']:.0f} windows decoded for {seconds['val_windows']:.0f}; counted"),
        Row("epoch", "frames encoded per val frame", seconds["frames_encoded"] / seconds["val_frames"], "x",
            f"{seconds['frames_encoded']:.0f} for {seconds['val_frames']:.0f} frames, windows sharing one; counted"),
        Row("epoch", "of which detection diagnostics (eval.diagnostics)", seconds["diagnostics"], "s", "host time, timed inside"),
        Row("epoch", "diagnostics / validation part", seconds["diagnostics"] / seconds["val"], "x", "ratio in this run"),
        Row("epoch", f"diagnostics / default epoch ({seconds['steps']:.0f} steps, estimated)", seconds["diagnostics"] / full_epoch,
            "x", f"training part x {seconds['steps']:.0f}/{steps} + validation part = {full_epoch:.0f} s"),
    ]

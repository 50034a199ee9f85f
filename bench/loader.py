"""Loader throughput: our clip loader against a naive PIL loader on the same 1920x1080 JPEG frames.

Both produce the same normalised float frames at shorter side 540 (960x540), in one process:
- naive: PIL open, convert("RGB"), resize the full-size image, to tensor, normalise;
- ours: ``ClipDataset`` (JPEG draft decoding at reduced scale, one resize, boxes, normalise) with the
  evaluation pipeline, and with the training pipeline's augmentation (crop, flip, colour jitter,
  then hue jitter as well).
Frames per second are measured interleaved in one run; the speed-ups are their ratios. Peak memory
is what one pass over the frames adds to the resident memory of a fresh process that has built the
loader and loaded one clip.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import OmegaConf
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from bench import Row
from bench._measure import interleaved_seconds, isolated_peak_memory_mib
from scene_model.data.dataset import ClipDataset, SequenceRecord
from scene_model.data.mot_format import list_sequences
from scene_model.data.synthetic import SyntheticSpec, ensure_synthetic
from scene_model.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ClipTransform
from scene_model.tools.compose import compose_run_config

DATA_ROOT = Path("data") / "bench_loader_1080p"
CLIP_LEN = 4
NAIVE = "naive PIL (full decode, resize)"
EVAL = "ClipDataset eval (draft decode, one resize)"
TRAIN = "ClipDataset train (crop 0.5, flip, jitter 0.2)"
TRAIN_HUE = "ClipDataset train, + hue 0.05"


def make_frames(root: Path, size: tuple[int, int], num_frames: int) -> SequenceRecord:
    """One synthetic sequence of ``size`` (width, height) frames, generated once and kept at ``root``."""
    defaults = OmegaConf.to_container(compose_run_config().data.synthetic)
    spec = SyntheticSpec.from_dict({**defaults, "num_train": 1, "num_val": 0, "num_test": 0, "num_frames": num_frames, "sizes": [size], "seed": 0})
    ensure_synthetic(root, spec)
    return SequenceRecord.load(list_sequences(root, "train")[0], require_gt=True, class_ids=(1,))


class NaiveLoader:
    """The baseline: every frame decoded at full size, then resized."""

    def __init__(self, record: SequenceRecord, short_side: int) -> None:
        self.record = record
        width, height = record.info.width, record.info.height
        self.size = (round(width * short_side / min(width, height)), round(height * short_side / min(width, height)))
        self.normalise = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD))])

    def __getitem__(self, index: int) -> torch.Tensor:
        frames = []
        for n in range(index * CLIP_LEN + 1, (index + 1) * CLIP_LEN + 1):
            image = Image.open(self.record.info.frame_path(n)).convert("RGB").resize(self.size, Image.Resampling.BILINEAR)
            frames.append(F.pil_to_tensor(image))
        return self.normalise(torch.stack(frames))


def make_loaders(record: SequenceRecord, short_side: int) -> dict[str, Callable[[int], object]]:
    def train(hue: float) -> ClipDataset:
        transform = ClipTransform(True, (short_side,), None, hflip=0.5, crop=0.5, crop_scale=(0.6, 1.0), color_jitter=0.2,
                                  hue=hue, min_box_size=1.0)
        return ClipDataset([record], CLIP_LEN, transform, True, max_interval=1, stride=CLIP_LEN, skip_bad_frames=False, chain_len=1)

    evaluation = ClipDataset.evaluation([record], CLIP_LEN, ClipTransform.evaluation(short_side, None, 1.0), CLIP_LEN, False)
    return {
        NAIVE: NaiveLoader(record, short_side).__getitem__,
        EVAL: evaluation.__getitem__,
        TRAIN: train(hue=0.0).__getitem__,
        TRAIN_HUE: train(hue=0.05).__getitem__,
    }


def one_pass(load: Callable[[int], object], windows: int) -> Callable[[], None]:
    def run_pass() -> None:
        for i in range(windows):
            load(i)

    return run_pass


def _pass_in_fresh_process(name: str, root: str, short_side: int, windows: int) -> Callable[[], list]:
    """Build one loader and warm it up on one clip (lazy initialisation is not the loader's memory)."""
    record = SequenceRecord.load(list_sequences(Path(root), "train")[0], require_gt=True, class_ids=(1,))
    load = make_loaders(record, short_side)[name]
    load(0)
    return one_pass(load, windows)


def run(quick: bool = False) -> list[Row]:
    if quick:  # small frames, and only the comparison the goal is about
        with tempfile.TemporaryDirectory(prefix="bench_loader_") as tmp:
            return measure(Path(tmp), (640, 360), num_frames=8, rounds=1, cases=(NAIVE, EVAL))
    return measure(DATA_ROOT, (1920, 1080), num_frames=32, rounds=3, cases=(NAIVE, EVAL, TRAIN, TRAIN_HUE))


def measure(root: Path, size: tuple[int, int], num_frames: int, rounds: int, cases: tuple[str, ...]) -> list[Row]:
    short_side = 540 * size[1] // 1080
    record = make_frames(root, size, num_frames)
    windows = num_frames // CLIP_LEN
    loaders = {name: load for name, load in make_loaders(record, short_side).items() if name in cases}
    ours, naive = loaders[EVAL](0).frames, loaders[NAIVE](0)
    if ours.shape != naive.shape:
        raise RuntimeError(f"the loaders disagree on the output: {tuple(ours.shape)} vs {tuple(naive.shape)}")

    torch.manual_seed(0)
    seconds = interleaved_seconds({name: one_pass(load, windows) for name, load in loaders.items()}, rounds)
    frames = windows * CLIP_LEN * rounds
    fps = {name: frames / s for name, s in seconds.items()}
    note = f"{size[0]}x{size[1]} JPEG -> {naive.shape[-1]}x{naive.shape[-2]}, {frames} frames, 1 process"
    rows = [Row("loader", name, value, "frames/s", note) for name, value in fps.items()]
    rows += [Row("loader", f"{name} / naive", fps[name] / fps[NAIVE], "x", "speed-up, same run") for name in fps if name != NAIVE]
    rows += [
        Row("loader", f"peak memory, {name}", isolated_peak_memory_mib(_pass_in_fresh_process, name, str(root), short_side, windows),
            "MiB", f"one pass of {windows} clips of {CLIP_LEN}, fresh process, after one warm-up clip")
        for name in loaders
    ]
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    difference = float(((ours - naive) * std).abs().mean() * 255)
    rows.append(Row("loader", "mean |ours - naive| per pixel", difference, "grey levels", "draft decode vs full decode"))
    return rows

"""Track a video file or a folder of images with a trained checkpoint.

    python -m scene_model.track dance.mp4 --ckpt outputs/runs/.../checkpoints/last.ckpt --out tracks/

The model, the evaluation size, the windows and the tracker's thresholds are those of the
checkpoint's run (``data.clip_len``, ``data.eval_size``, ``eval.tracker``), so the video is tracked
exactly as validation tracks a sequence; the flags override the tracker's settings. Writes
``OUT/<name>.txt`` (MOTChallenge rows in the source's pixels) and ``OUT/<name>.mp4`` (the source's
frames with each track's boxes in its colour and labelled with its id, same frame count and rate).
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from omegaconf import OmegaConf, open_dict
from tqdm import tqdm

from scene_model.data.types import SceneBatch
from scene_model.data.video import FrameSource, open_source
from scene_model.errors import CheckpointError, ConfigError, SceneModelError
from scene_model.tracking.mot_results import format_rows
from scene_model.tracking.sequence_tracker import SequenceTracker, check_overlap
from scene_model.tracking.stream import stream_windows
from scene_model.tracking.video_output import VideoWriter, draw_tracks, rows_by_frame
from scene_model.training.checkpoints import check_fits, load_checkpoint_file
from scene_model.training.config_loader import ConfigLoader
from scene_model.training.lit_module import SceneModelLightningModule

T = TypeVar("T")
TRACKER_FLAGS = ("start_threshold", "keep_threshold", "link_iou", "max_lost", "height_scale", "nms_iou", "interpolate", "smooth_sigma")


@dataclass
class TrackedSource:
    name: str
    frames: int
    tracks: int
    boxes: int
    seconds: float
    results: Path
    video: Path | None


def load_model(path: Path, device: str) -> tuple[SceneModelLightningModule, Any, Any]:
    """(model in eval mode on ``device``, its data module, its run config) from a checkpoint of train.py."""
    checkpoint = load_checkpoint_file(path)
    config = (checkpoint.get("hyper_parameters") or {}).get("config")
    if not isinstance(config, dict) or not {"model", "data", "eval"} <= set(config):
        raise CheckpointError(
            f"checkpoint {path} was not written by this project's train.py: it holds no run config "
            "(hyper_parameters.config with model, data and eval)"
        )
    cfg = OmegaConf.create(config)
    with open_dict(cfg):
        cfg.model.compile = False  # inference runs the model eagerly
    loader = ConfigLoader(cfg)
    try:
        module = loader.build_lit_module()
        datamodule = loader.build_datamodule()
    except Exception as err:
        raise CheckpointError(f"checkpoint {path}: its run config does not build a SceneModel here ({err})") from None
    check_fits(checkpoint, module.state_dict(), None, path)
    module.load_state_dict(checkpoint["state_dict"])
    return module.to(device).eval(), datamodule, cfg


def build_tracker(cfg: Any, overrides: dict[str, Any]) -> SequenceTracker:
    """The run's ``eval.tracker`` with the given settings replaced (None: keep the run's)."""
    known = inspect.signature(SequenceTracker).parameters
    options = {k: v for k, v in OmegaConf.to_container(cfg.eval.tracker, resolve=True).items() if k in known}
    options.update({k: v for k, v in overrides.items() if v is not None})
    return SequenceTracker(**options)


def counted(items: Iterable[T], bar: tqdm) -> Iterator[T]:
    for item in items:
        yield item
        bar.update(1)


def write_text(path: Path, text: str) -> None:
    """Write beside ``path``, then rename over it: an earlier file stays whole until the new one is."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def track_source(
    source: FrameSource,
    module: SceneModelLightningModule,
    datamodule: Any,
    tracker: SequenceTracker,
    out_dir: Path,
    device: str,
    video: bool = True,
    progress: bool = True,
    stride: int | None = None,
    batch_size: int | None = None,
) -> TrackedSource:
    """Track ``source`` and write ``<name>.txt`` (and ``<name>.mp4``) into ``out_dir``; windows every
    ``stride`` frames (default: the run's ``data.val_stride``), ``batch_size`` per forward pass
    (default: ``data.eval_batch_size``)."""
    info = source.info
    clip_len = datamodule.clip_len
    stride = stride or datamodule.val_stride
    check_overlap(clip_len, stride)
    geometry = datamodule.eval_transform.plan(info.width, info.height)

    def predict(batch: SceneBatch) -> dict:
        batch = batch.to(device)
        with torch.no_grad():
            return module(batch.frames, batch.padding_mask, batch.image_sizes)

    started = time.perf_counter()
    with tqdm(total=info.num_frames, unit="frame", desc=f"track {info.name}", disable=not progress) as bar:
        windows = stream_windows(
            counted(source.frames(geometry), bar), info.name, (info.width, info.height), clip_len,
            stride, datamodule.eval_transform, geometry, batch_size or datamodule.eval_batch_size,
        )
        rows = tracker.track(predict, windows, [info.name])[info.name]
        num_frames = bar.n
    if num_frames == 0:
        raise SceneModelError(f"{source.path} holds no frame")
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / f"{info.name}.txt"
    video_path = out_dir / f"{info.name}.mp4" if video else None
    if video_path is not None:
        per_frame = rows_by_frame(rows)
        empty = rows[:0]
        with (
            tqdm(total=num_frames, unit="frame", desc=f"video {info.name}", disable=not progress) as bar,
            VideoWriter(video_path, info.width, info.height, info.fps) as writer,
        ):
            for number, image in enumerate(counted(source.frames(), bar), start=1):
                writer.write(draw_tracks(image, per_frame.get(number, empty)))
    write_text(results, format_rows(rows))
    return TrackedSource(
        name=info.name, frames=num_frames, tracks=len(np.unique(rows[:, 1])), boxes=len(rows),
        seconds=time.perf_counter() - started, results=results, video=video_path,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scene_model.track", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a video file (mp4, mkv, webm, avi, ...) or a folder of images")
    parser.add_argument("--ckpt", type=Path, required=True, help="a checkpoint written by train.py (its run config is inside)")
    parser.add_argument("--out", type=Path, required=True, help="folder for <name>.txt and <name>.mp4")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--fps", type=float, default=None, help="frame rate of a folder of images (default: seqinfo.ini, else 25)")
    parser.add_argument("--no-video", action="store_true", help="write the result file only")
    group = parser.add_argument_group("tracker (default: the checkpoint's eval.tracker)")
    group.add_argument("--stride", type=int, default=None, help="a window every STRIDE frames (< data.clip_len; default: data.val_stride)")
    group.add_argument("--start-threshold", type=float, default=None, help="score that starts a track")
    group.add_argument("--keep-threshold", type=float, default=None, help="score that writes a box of a running track")
    group.add_argument("--link-iou", type=float, default=None, help="mean IoU that links a track across windows")
    group.add_argument("--max-lost", type=int, default=None, help="frames a track may go without a box")
    group.add_argument("--height-scale", type=float, default=None, help="how strongly links prefer a query of the track's height (0: off)")
    group.add_argument("--nms-iou", type=float, default=None, help="mean IoU over a window above which the weaker of two queries is a duplicate")
    group.add_argument(
        "--interpolate", action=argparse.BooleanOptionalAction, default=None,
        help="fill the frames a track went without a box by interpolation",
    )
    group.add_argument("--smooth-sigma", type=float, default=None, help="Gaussian smoothing of each track's boxes over time, in frames (0: off)")
    group.add_argument("--batch-size", type=int, default=None, help="windows per forward pass (default: data.eval_batch_size)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> TrackedSource:
    args = parse_args(argv)
    try:
        if str(args.device).startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"--device {args.device}: no CUDA device is available here; use --device cpu")
        source = open_source(args.source, args.fps)
        module, datamodule, cfg = load_model(args.ckpt, args.device)
        tracker = build_tracker(cfg, {k: getattr(args, k) for k in TRACKER_FLAGS})
        done = track_source(
            source, module, datamodule, tracker, args.out, args.device, video=not args.no_video,
            stride=args.stride, batch_size=args.batch_size,
        )
    except SceneModelError as err:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    per_frame = 1000 * done.seconds / done.frames
    written = ", ".join(str(p) for p in (done.results, done.video) if p is not None)
    print(f"{done.name}: {done.frames} frames, {done.tracks} tracks, {done.boxes} boxes in {done.seconds:.1f} s "
          f"({per_frame:.0f} ms/frame) -> {written}")
    return done


if __name__ == "__main__":
    main()

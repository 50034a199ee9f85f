"""Tracking a video file or a folder of images as validation tracks a sequence.

The frames are streamed through the evaluation windows of the run (``stream.stream_windows``), the
model's predictions are linked by the ``SequenceTracker``, and the results are written as
``<name>.txt`` (MOTChallenge rows in the source's pixels) and, optionally, ``<name>.mp4`` (the
source's frames with each track's boxes in its colour).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
from tqdm import tqdm

from scene_model.association.base import Association
from scene_model.data.video import FrameSource
from scene_model.errors import SceneModelError
from scene_model.outputs import writable_dir, write_text_atomically
from scene_model.tracking.drawing import draw_tracks
from scene_model.tracking.mot_results import format_rows
from scene_model.tracking.sequence_tracker import Predict, SequenceTracker, check_overlap
from scene_model.tracking.stream import stream_windows
from scene_model.tracking.video_output import VideoWriter, rows_by_frame

T = TypeVar("T")


@dataclass
class TrackedSource:
    name: str
    frames: int
    tracks: int
    boxes: int
    seconds: float
    results: Path
    video: Path | None


class Counted(Generic[T]):
    """The items of ``items``, counted (``count``) and shown on ``bar`` as they pass."""

    def __init__(self, items: Iterable[T], bar: tqdm) -> None:
        self.items, self.bar, self.count = items, bar, 0

    def __iter__(self) -> Iterator[T]:
        for item in self.items:
            self.count += 1
            self.bar.update(1)
            yield item


def check_output_dir(out_dir: Path) -> Path:
    """Create ``out_dir`` and write a probe block there: a folder that cannot take the results (a file of
    that name, a read-only or full disk) is one ``OutputError`` line before any tracking."""
    return writable_dir(out_dir, "output folder")


def track_source(
    source: FrameSource,
    predict: Predict,
    association: Association,
    datamodule: Any,
    tracker: SequenceTracker,
    out_dir: Path,
    video: bool = True,
    progress: bool = True,
    stride: int | None = None,
    batch_size: int | None = None,
) -> TrackedSource:
    """Track ``source`` with ``predict`` (a module's ``predict``) and its ``association`` and write
    ``<name>.txt`` (and ``<name>.mp4``) into ``out_dir``. ``datamodule`` gives the run's windows
    (``clip_len``, evaluation transform); windows every ``stride`` frames (default: ``data.val_stride``),
    ``batch_size`` per forward pass (default: ``data.eval_batch_size``; one for an association that
    carries queries from each window into the next). ``out_dir`` is created and checked for writing before the first
    frame is read."""
    check_output_dir(out_dir)
    info = source.info
    clip_len = datamodule.clip_len
    stride = stride or datamodule.val_stride
    check_overlap(clip_len, stride)
    geometry = datamodule.eval_transform.plan(info.width, info.height)
    started = time.perf_counter()
    with tqdm(total=info.num_frames, unit="frame", desc=f"track {info.name}", disable=not progress) as bar:
        frames = Counted(source.frames(geometry), bar)
        windows = stream_windows(
            iter(frames), info.name, (info.height, info.width), clip_len,
            stride, datamodule.eval_transform, geometry, 1 if association.carries else batch_size or datamodule.eval_batch_size,
        )
        rows = tracker.track(predict, windows, [info.name], association)[info.name]
    num_frames = frames.count
    if num_frames == 0:
        raise SceneModelError(f"{source.path} holds no frame")
    results = out_dir / f"{info.name}.txt"
    video_path = out_dir / f"{info.name}.mp4" if video else None
    if video_path is not None:
        per_frame = rows_by_frame(rows)
        empty = rows[:0]
        with (
            tqdm(total=num_frames, unit="frame", desc=f"video {info.name}", disable=not progress) as bar,
            VideoWriter(video_path, info.width, info.height, info.fps) as writer,
        ):
            for number, image in enumerate(Counted(source.frames(), bar), start=1):
                writer.write(draw_tracks(image, per_frame.get(number, empty)))
    write_text_atomically(results, format_rows(rows), "results")
    return TrackedSource(
        name=info.name, frames=num_frames, tracks=len(np.unique(rows[:, 1])), boxes=len(rows),
        seconds=time.perf_counter() - started, results=results, video=video_path,
    )

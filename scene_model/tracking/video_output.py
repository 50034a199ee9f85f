"""Tracks drawn on the source's frames and encoded as an H.264 mp4 (PyAV), one frame at a time."""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np
import torch
from torch import Tensor
from torchvision.utils import draw_bounding_boxes

from scene_model.training.callbacks.visualization import track_colour


def draw_tracks(image: np.ndarray, rows: np.ndarray, width: int = 2) -> np.ndarray:
    """uint8[H, W, 3] with each row's box (frame, id, left, top, width, height, ...) in its track's
    colour, labelled with its id; a new array."""
    if not len(rows):
        return image
    xywh = torch.from_numpy(rows[:, 2:6]).float()
    xyxy = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)
    ids = rows[:, 1].astype(int).tolist()
    chw: Tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    drawn = draw_bounding_boxes(chw, xyxy, labels=[str(i) for i in ids], colors=[track_colour(i) for i in ids], width=width)
    return drawn.permute(1, 2, 0).numpy()


def rows_by_frame(rows: np.ndarray) -> dict[int, np.ndarray]:
    """{frame: its rows} of result rows float[N, >=2]."""
    if not len(rows):
        return {}
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    frames, starts = np.unique(rows[:, 0].astype(int), return_index=True)
    return {int(f): part for f, part in zip(frames, np.split(rows, starts[1:]), strict=True)}


class VideoWriter:
    """An H.264 (libx264, yuv420p) mp4 at ``fps``, one frame per ``write``; frame i is shown at i / fps.

    Written to a hidden file beside ``path`` and renamed over it on a clean ``close``, so a failure
    leaves an earlier file of that name as it was. yuv420p needs even sizes: an odd width or height
    gets one black column or row.
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: Fraction | float, crf: int = 23) -> None:
        self.path = Path(path)
        self.partial = self.path.with_name(f".{self.path.name}.partial")
        self.size = (width, height)
        self.container = av.open(str(self.partial), "w", format="mp4")
        rate = Fraction(fps).limit_denominator(1001)
        self.stream = self.container.add_stream("libx264", rate=rate, options={"crf": str(crf), "preset": "veryfast"})
        self.time_base = 1 / rate
        self.stream.codec_context.time_base = self.time_base
        self.stream.width, self.stream.height = width + width % 2, height + height % 2
        self.stream.pix_fmt = "yuv420p"
        self.count = 0

    def write(self, image: np.ndarray) -> None:
        """uint8[H, W, 3] RGB of the writer's size."""
        height, width = image.shape[:2]
        if (width, height) != self.size:
            raise ValueError(f"frame {self.count + 1} is {width}x{height}, the video {self.size[0]}x{self.size[1]}")
        if width % 2 or height % 2:
            image = np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)))
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = self.count
        frame.time_base = self.time_base
        self.container.mux(self.stream.encode(frame))
        self.count += 1

    def close(self, keep: bool = True) -> None:
        try:
            if keep:
                self.container.mux(self.stream.encode())
        finally:
            self.container.close()
        if keep:
            os.replace(self.partial, self.path)
        else:
            with contextlib.suppress(OSError):
                self.partial.unlink()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self.close(keep=kind is None)

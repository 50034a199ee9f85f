"""Tracks drawn on the source's frames and encoded as an H.264 mp4 (PyAV), one frame at a time."""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from scene_model.outputs import atomic_file


def rows_by_frame(rows: np.ndarray) -> dict[int, np.ndarray]:
    """{frame: its rows} of result rows float[N, >=2]."""
    if not len(rows):
        return {}
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    frames, starts = np.unique(rows[:, 0].astype(int), return_index=True)
    return {int(f): part for f, part in zip(frames, np.split(rows, starts[1:]), strict=True)}


class VideoWriter:
    """An H.264 (libx264, yuv420p) mp4 at ``fps``, one frame per ``write``; frame i is shown at i / fps.

    Used as a context manager, it writes through ``outputs.atomic_file``: a failure leaves an earlier
    file of that name as it was. yuv420p needs even sizes: an odd width or height gets one black column
    or row.
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: Fraction | float, crf: int = 23) -> None:
        self.path = Path(path)
        self.size = (width, height)
        self.rate = Fraction(fps).limit_denominator(1001)
        self.crf = crf
        self.count = 0
        self.files = contextlib.ExitStack()

    def __enter__(self) -> VideoWriter:
        partial = self.files.enter_context(atomic_file(self.path, "video"))
        self.container = self.files.enter_context(av.open(str(partial), "w", format="mp4"))
        width, height = self.size
        self.stream = self.container.add_stream("libx264", rate=self.rate, options={"crf": str(self.crf), "preset": "veryfast"})
        self.time_base = 1 / self.rate
        self.stream.codec_context.time_base = self.time_base
        self.stream.width, self.stream.height = width + width % 2, height + height % 2
        self.stream.pix_fmt = "yuv420p"
        return self

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

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        # Closes the container, then renames the file into place; a failure (raised again inside, so
        # that atomic_file sees it) removes the file instead.
        with self.files:
            if err is not None:
                raise err
            self.container.mux(self.stream.encode())  # flush the encoder

"""Frames of a video file (PyAV, FFmpeg bundled in its wheel) or of a folder of images, one at a time.

``open_source(path)`` gives a ``FrameSource``: its ``info`` (name, size, frame rate, frame count when
the container knows it) and ``frames(geometry)``, a fresh pass over the frames, decoded one by one
and resized to the evaluation size (or left at their own size), so that memory does not grow with
the length of the source. Errors name the file (and the frame).

A video that ends before the frame count its container states (a file cut short by an interrupted
copy or download) is an error, ``ShortVideoError``, whether the decoder fails on the cut frame or the
stream just ends there; with ``allow_short`` the frames decoded so far are the video, and a
``ShortVideoWarning`` gives both counts.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from scene_model.data.decode import FrameGeometry, UnreadableFrameError, decode_frame, fit_image
from scene_model.data.mot_format import read_seqinfo
from scene_model.errors import DataFormatError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEFAULT_FPS = Fraction(25)


class NotAVideoError(DataFormatError):
    """A source that is neither a video FFmpeg can decode nor a folder of images."""


class ShortVideoError(UnreadableFrameError):
    """A video whose frames end (or stop decoding) before the frame count its container states."""


class ShortVideoWarning(UserWarning):
    """A video shorter than its container states, accepted with ``allow_short``."""


@dataclass(frozen=True)
class SourceInfo:
    name: str  # the result files are <name>.txt and <name>.mp4
    width: int
    height: int
    fps: Fraction
    num_frames: int | None  # None when the container does not say


class FrameSource:
    """A video file or a folder of images; ``frames`` may be called more than once (each call decodes anew)."""

    info: SourceInfo
    path: Path

    def frames(self, geometry: FrameGeometry | None = None) -> Iterator[np.ndarray]:
        """uint8[H, W, 3] RGB frames in order, of ``geometry.out_size`` (None: the source's own size)."""
        raise NotImplementedError


class VideoFile(FrameSource):
    """A video file; ``allow_short``: a video that ends or stops decoding before the frame count of its
    container is the frames decoded up to there (with a ``ShortVideoWarning``), not an error."""

    def __init__(self, path: Path, allow_short: bool = False) -> None:
        self.path = Path(path)
        self.allow_short = allow_short
        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise NotAVideoError(f"{self.path} has no video stream")
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate or DEFAULT_FPS
                width, height = stream.codec_context.width, stream.codec_context.height
                self.info = SourceInfo(self.path.stem, width, height, Fraction(rate), stream.frames or None)
        except av.FFmpegError as err:
            raise NotAVideoError(f"{self.path} is not a video FFmpeg can read ({err.strerror or err})") from None
        if not width or not height:
            raise NotAVideoError(f"{self.path}: its video stream has no frame size")

    def frames(self, geometry: FrameGeometry | None = None) -> Iterator[np.ndarray]:
        number, failure = 0, None
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                # Slice threads only: FFmpeg's frame threads drop the error of a frame that does not decode
                # (a cut file then just ends, as if complete).
                stream.thread_type = "SLICE"
                for frame in container.decode(stream):
                    number += 1
                    if (frame.width, frame.height) != (self.info.width, self.info.height):
                        raise UnreadableFrameError(
                            f"{self.path}: frame {number} is {frame.width}x{frame.height}, the video "
                            f"{self.info.width}x{self.info.height}"
                        )
                    if geometry is None:
                        yield frame.to_ndarray(format="rgb24")
                    else:
                        yield fit_image(frame.to_image(), geometry)
        except av.FFmpegError as err:
            failure = err.strerror or str(err)
        self._check_end(number, failure)

    def _check_end(self, decoded: int, failure: str | None) -> None:
        """After the last frame decoded: a decoding error, or fewer frames than the container states, is
        ``ShortVideoError`` (a ``ShortVideoWarning`` with ``allow_short``)."""
        stated = self.info.num_frames
        if failure is None and (stated is None or decoded >= stated):
            return
        counts = f"{decoded} of the {stated} frames its container states" if stated else f"{decoded} frames"
        if failure is not None:
            message = f"{self.path}: decoding stopped at frame {decoded + 1} ({failure}) after {counts}"
        else:
            message = f"{self.path}: the video ends after {counts}"
        if not self.allow_short:
            raise ShortVideoError(f"{message}; the file is cut short or damaged")
        warnings.warn(f"{message}; tracking those {decoded}", ShortVideoWarning, stacklevel=3)


class ImageFolder(FrameSource):
    """The images of a folder in name order; all of one size. A DanceTrack sequence folder (or its
    ``img1/``) takes its name and frame rate from seqinfo.ini."""

    def __init__(self, path: Path, fps: Fraction | None = None) -> None:
        self.path = Path(path)
        name, rate = self.path.name, None
        seqinfo = next((d for d in (self.path, self.path.parent) if (d / "seqinfo.ini").is_file()), None)
        if seqinfo is not None:
            info = read_seqinfo(seqinfo)
            name, rate = info.name, Fraction(info.frame_rate).limit_denominator(1001)
            if seqinfo == self.path:
                self.path = self.path / info.im_dir
        self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise NotAVideoError(f"{self.path} holds no image ({', '.join(IMAGE_SUFFIXES)})")
        try:
            with Image.open(self.files[0]) as image:
                width, height = image.size
        except (OSError, SyntaxError, ValueError) as err:
            raise UnreadableFrameError(f"corrupt or truncated image {self.files[0]}: {err}") from None
        self.info = SourceInfo(name, width, height, fps or rate or DEFAULT_FPS, len(self.files))

    def frames(self, geometry: FrameGeometry | None = None) -> Iterator[np.ndarray]:
        width, height = self.info.width, self.info.height
        geometry = geometry or FrameGeometry.full(width, height, (height, width))
        for path in self.files:
            try:
                yield decode_frame(path, (width, height), geometry)
            except UnreadableFrameError:
                raise
            except DataFormatError:  # another size: say so without seqinfo.ini's words
                with Image.open(path) as image:
                    found = image.size
                raise UnreadableFrameError(
                    f"{path} is {found[0]}x{found[1]}, the first image {self.files[0].name} {width}x{height}"
                ) from None


def open_source(path: str | Path, fps: float | None = None, allow_short: bool = False) -> FrameSource:
    """A video file or a folder of images; ``fps`` sets a folder's frame rate (default: its seqinfo.ini, else 25);
    ``allow_short``: a video shorter than its container states is tracked as far as it decodes (see ``VideoFile``)."""
    path = Path(path)
    if path.is_dir():
        return ImageFolder(path, Fraction(fps).limit_denominator(1001) if fps else None)
    if not path.is_file():
        raise NotAVideoError(f"{path} does not exist; give a video file ({', '.join(VIDEO_SUFFIXES)}) or a folder of images")
    return VideoFile(path, allow_short)

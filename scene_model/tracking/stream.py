"""Evaluation windows over a stream of frames, for ``SequenceTracker.track``.

The windows are those ``SequenceTracker.windows`` builds for a sequence on disk (``ClipDataset`` in
evaluation): ``clip_len`` frames starting every ``stride`` frames, and a last one ending on the last
frame; each frame is resized and normalised by the same ``ClipTransform``. Only the frames of the
current window are held, so a video of any length is tracked in constant memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from scene_model.data.collate import collate_tracking
from scene_model.data.dataset import Clip
from scene_model.data.decode import FrameGeometry
from scene_model.data.transforms import ClipTransform
from scene_model.data.types import SceneBatch, TargetFrame


def stream_windows(
    frames: Iterable[np.ndarray],
    name: str,
    orig_size: tuple[int, int],
    clip_len: int,
    stride: int,
    transform: ClipTransform,
    geometry: FrameGeometry,
    batch_size: int,
) -> Iterator[SceneBatch]:
    """Batches of ``batch_size`` windows of sequence ``name``.

    frames: uint8[H, W, 3] of ``geometry.out_size``, in order; orig_size: (height, width) of the
    source, the pixels the tracker's boxes come back in.
    """
    window: deque[tuple[int, torch.Tensor]] = deque(maxlen=clip_len)
    clips: list[Clip] = []
    last_end = number = 0
    no_boxes = torch.zeros(0, 4)
    for number, pixels in enumerate(frames, start=1):
        pixels = pixels if pixels.flags.writeable else pixels.copy()  # PIL's arrays are read-only
        chw = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None]
        normalised, _, _ = transform(chw, no_boxes, [0], geometry, orig_size)
        window.append((number, normalised[0]))
        if number >= clip_len and (number - clip_len) % stride == 0:
            clips.append(_clip(window, name, orig_size))
            last_end = number
            if len(clips) == batch_size:
                yield collate_tracking(clips)
                clips = []
    if number and last_end != number:  # the last window ends on the last frame (a short video: its only window)
        clips.append(_clip(window, name, orig_size))
    if clips:
        yield collate_tracking(clips)


def _clip(window: deque[tuple[int, torch.Tensor]], name: str, orig_size: tuple[int, int]) -> Clip:
    numbers = [n for n, _ in window]
    return Clip(
        frames=torch.stack([f for _, f in window]),
        targets=[TargetFrame.empty(n) for n in numbers],
        sequence_id=name,
        frame_indices=torch.tensor(numbers, dtype=torch.long),
        orig_size=orig_size,
    )

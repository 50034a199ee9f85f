"""Overlapping windows over whole sequences, for sequence inference.

The evaluation windows of the data layer (``ClipDataset(train=False)``) with one change: the last
window of a sequence always ends on its last frame, so every frame is covered whatever the stride.
Frames are read and transformed exactly as in validation.
"""

from __future__ import annotations

import numpy as np
from torchvision.transforms import v2

from scene_model.data.dataset import ClipDataset, SequenceRecord


def window_starts(length: int, clip_len: int, stride: int) -> np.ndarray:
    """1-based start frames: every ``stride`` frames, plus the start of the window ending on ``length``."""
    last = max(1, length - clip_len + 1)
    starts = np.arange(1, last + 1, max(1, int(stride)))
    if starts[-1] != last:
        starts = np.append(starts, last)
    return starts.astype(np.int32)


class SequenceWindows(ClipDataset):
    """Windows of ``clip_len`` consecutive frames every ``stride`` frames, sequence after sequence.

    Items are the data layer's ``Clip`` in (sequence, start) order; ``collate_tracking`` batches them.
    """

    def __init__(
        self,
        sequences: list[SequenceRecord],
        clip_len: int,
        transform: v2.Transform,
        stride: int,
        class_ids: tuple[int, ...] = (1,),
    ) -> None:
        super().__init__(sequences, clip_len, transform, train=False, stride=stride, class_ids=class_ids)
        per_sequence = [window_starts(r.info.length, clip_len, stride) for r in sequences]
        self.seq_index = np.concatenate(
            [np.full(len(s), i, dtype=np.int32) for i, s in enumerate(per_sequence)] or [np.zeros(0, np.int32)]
        )
        self.starts = np.concatenate(per_sequence or [np.zeros(0, np.int32)])

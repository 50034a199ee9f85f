"""Each frame encoded once when evaluation windows overlap.

Consecutive evaluation windows of a sequence share ``clip_len - stride`` frames (one by default), and
the per-frame part of the model (backbone, encoder, proposals: ``SceneModel.encode_frames``) of a
frame does not depend on the window it is in. ``FrameCache`` keeps the encoded frames of each
sequence's latest window and hands them to the next window, within a batch (a video's consecutive
windows in one batch) and across batches (a split's windows in order, one sequence per batch row);
only the frames it has not seen are encoded. It holds for one ordered pass of a model whose weights
do not change (a validation, a tracked split); it is emptied when the canvas changes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import torch
from torch import Tensor

from scene_model.models.scene_model import EncodedClip

FrameKey = tuple[Hashable, int]  # (sequence, frame number)


class FrameCache:
    """Encoded frames of each sequence's latest window, keyed by (sequence, frame number)."""

    def __init__(self) -> None:
        self.frames: dict[tuple[FrameKey, tuple[int, int]], EncodedClip] = {}
        self.canvas: tuple[int, int] | None = None
        self.encoded = 0  # frames this cache had encoded (what a shared frame saves shows here)

    def encode(
        self,
        encode_frames: Callable[[Tensor, Tensor | None], EncodedClip],
        frames: Tensor,
        image_sizes: Tensor | None,
        keys: Sequence[Sequence[FrameKey | None]],
    ) -> EncodedClip:
        """The EncodedClip of ``frames`` [B,L,3,H,W], as ``SceneModel.encode`` gives it, encoding only
        the frames not seen before. ``keys[b][t]``: the (sequence, frame number) of each frame, None
        for a padded frame (always encoded, never kept); ``image_sizes`` long[B,2] as for ``encode``."""
        canvas = (int(frames.shape[-2]), int(frames.shape[-1]))
        if canvas != self.canvas:
            self.frames.clear()
            self.canvas = canvas
        sizes = [tuple(s) for s in image_sizes.tolist()] if image_sizes is not None else [canvas] * len(frames)
        wanted = [[(key, sizes[b]) if key is not None else None for key in row] for b, row in enumerate(keys)]
        todo: dict[object, tuple[int, int]] = {}
        for b, row in enumerate(wanted):
            for t, entry in enumerate(row):
                name = entry if entry is not None else ("padded", b, t)
                if name not in self.frames and name not in todo:
                    todo[name] = (b, t)
        fresh: dict[object, EncodedClip] = {}
        if todo:
            rows, cols = (torch.tensor(index) for index in zip(*todo.values(), strict=True))
            sizes_todo = image_sizes[rows] if image_sizes is not None else None
            encoded = encode_frames(frames[rows, cols], sizes_todo)
            fresh = {name: encoded.frame(m, 0) for m, name in enumerate(todo)}
            self.encoded += len(todo)
        known = {**self.frames, **fresh}
        stacked = EncodedClip.stack(
            [[known[entry if entry is not None else ("padded", b, t)] for t, entry in enumerate(row)] for b, row in enumerate(wanted)]
        )
        self._keep_latest(wanted, fresh)
        return stacked

    def _keep_latest(self, wanted: list[list[tuple | None]], fresh: dict[object, EncodedClip]) -> None:
        """Keep, per sequence, the frames of its latest window in this batch; drop the rest."""
        latest: dict[Hashable, list[tuple]] = {}
        for row in wanted:
            entries = [e for e in row if e is not None]
            if entries:
                sequence, first = entries[0][0]
                if sequence not in latest or first >= latest[sequence][0][0][1]:
                    latest[sequence] = entries
        known = {**self.frames, **fresh}
        self.frames = {entry: known[entry] for entries in latest.values() for entry in entries}

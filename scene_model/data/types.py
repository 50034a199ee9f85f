"""The batch contract between data and training.

Coordinates: boxes are (cx, cy, w, h) in 0..1 of the canvas the frames were resized and padded to;
sizes are (height, width) (see ``scene_model.boxes``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from scene_model.boxes import join


@dataclass
class TargetFrame:
    """Ground truth of one frame: N boxes with their track ids and class labels."""

    center: Tensor  # float[N, 2], (cx, cy) in 0..1
    size: Tensor  # float[N, 2], (w, h) in 0..1
    track_ids: Tensor  # long[N]
    labels: Tensor  # long[N]
    frame_index: int  # 1-based frame number in the sequence, -1 for a padded frame

    @classmethod
    def empty(cls, frame_index: int = -1) -> TargetFrame:
        return cls(
            center=torch.zeros(0, 2),
            size=torch.zeros(0, 2),
            track_ids=torch.zeros(0, dtype=torch.long),
            labels=torch.zeros(0, dtype=torch.long),
            frame_index=frame_index,
        )

    def __len__(self) -> int:
        return int(self.track_ids.numel())

    @property
    def boxes(self) -> Tensor:
        """float[N, 4] (cx, cy, w, h) in 0..1."""
        return join(self.center, self.size)


@dataclass
class TrackTargets:
    """The same ground truth as ``targets``, dense per window track: K tracks padded over the batch.

    Built once in ``collate_tracking`` (in the loader workers) so the loss and the matcher work on a
    handful of batched tensors instead of B*T small ones.
    """

    boxes: Tensor  # float[B, T, K, 4] (cx, cy, w, h); zeros where absent
    present: Tensor  # bool[B, T, K]: track k has a box in frame t
    labels: Tensor  # long[B, K]
    track_ids: Tensor  # long[B, K], -1 for padding
    valid: Tensor  # bool[B, K]: a real track (not padding)

    @classmethod
    def from_frames(cls, targets: Sequence[Sequence[TargetFrame]], num_frames: int) -> TrackTargets:
        """Gather per-frame targets into per-track tensors (one track = one id within a window)."""
        per_sample_ids = []
        for sample in targets:
            ids = [f.track_ids for f in sample if len(f)]
            per_sample_ids.append(torch.unique(torch.cat(ids)) if ids else torch.zeros(0, dtype=torch.long))
        batch_size = len(targets)
        num_tracks = max((len(ids) for ids in per_sample_ids), default=0)
        boxes = torch.zeros(batch_size, num_frames, num_tracks, 4)
        present = torch.zeros(batch_size, num_frames, num_tracks, dtype=torch.bool)
        labels = torch.zeros(batch_size, num_tracks, dtype=torch.long)
        track_ids = torch.full((batch_size, num_tracks), -1, dtype=torch.long)
        for b, (sample, ids) in enumerate(zip(targets, per_sample_ids, strict=True)):
            track_ids[b, : len(ids)] = ids
            for t, frame in enumerate(sample):
                if not len(frame):
                    continue
                k = torch.searchsorted(ids, frame.track_ids)
                boxes[b, t, k] = frame.boxes
                present[b, t, k] = True
                labels[b, k] = frame.labels
        return cls(boxes=boxes, present=present, labels=labels, track_ids=track_ids, valid=track_ids >= 0)

    @property
    def num_tracks(self) -> int:
        return self.track_ids.shape[1]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TrackTargets:
        moved = (getattr(self, f).to(device, non_blocking=non_blocking) for f in ("boxes", "present", "labels", "track_ids", "valid"))
        return TrackTargets(*moved)


@dataclass
class SceneBatch:
    """One batch of windows of T frames, padded to the longest window.

    ``frames``, ``padding_mask`` and ``tracks`` move to the training device; ``targets`` stays on the
    host (it serves visualisation and tracking, the loss reads ``tracks``).
    """

    frames: Tensor  # float[B, T, 3, H, W], normalised
    targets: list[list[TargetFrame]]  # B lists of T frames
    padding_mask: Tensor  # bool[B, T], True = padded frame
    sequence_ids: list[str]
    tracks: TrackTargets | None = None
    frame_indices: Tensor | None = None  # long[B, T], 1-based frame numbers, -1 where padded
    orig_sizes: Tensor | None = None  # long[B, 2], (height, width) of the original images
    image_sizes: Tensor | None = None  # long[B, 2], (height, width) of each sample inside the padded canvas
    skipped_frames: tuple[str, ...] = ()  # unreadable frame files left out of these clips (data.skip_bad_frames)
    window_len: int | None = None  # the clips are chains of windows of this many frames (None: one window each)

    def __len__(self) -> int:
        return self.frames.shape[0]

    def window_starts(self) -> list[int]:
        """The first frame of each window of the clips: ``[0]`` for one window; for a chain, windows of
        ``window_len`` frames each starting on the last frame of the one before."""
        if self.window_len is None:
            return [0]
        total, step = self.frames.shape[1], self.window_len - 1
        return list(range(0, max(total - 1, 1), step))

    def window(self, start: int) -> SceneBatch:
        """The window of the chain starting at frame ``start`` (``window_len`` frames, fewer at the end)."""
        cut = slice(start, start + self.window_len)
        tracks = self.tracks
        if tracks is not None:  # the same tracks, present only where they are in the window
            tracks = replace(tracks, boxes=tracks.boxes[:, cut], present=tracks.present[:, cut])
        return replace(
            self,
            frames=self.frames[:, cut],
            targets=[sample[cut] for sample in self.targets],
            padding_mask=self.padding_mask[:, cut],
            tracks=tracks,
            frame_indices=self.frame_indices[:, cut] if self.frame_indices is not None else None,
            window_len=None,
        )

    def to(self, device: torch.device | str, non_blocking: bool = False) -> SceneBatch:
        """Move what the model and the loss read (frames, padding_mask, tracks, frame_indices); ``targets`` stays put."""
        return replace(
            self,
            frames=self.frames.to(device, non_blocking=non_blocking),
            padding_mask=self.padding_mask.to(device, non_blocking=non_blocking),
            tracks=self.tracks.to(device, non_blocking=non_blocking) if self.tracks is not None else None,
            frame_indices=self.frame_indices.to(device, non_blocking=non_blocking) if self.frame_indices is not None else None,
        )

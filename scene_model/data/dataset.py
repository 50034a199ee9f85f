"""Windowed clips of T frames over MOTChallenge-layout sequences.

The sample index is two numpy arrays (sequence, start frame), and each sequence's boxes are numpy
arrays with a per-frame offset table, so loader workers share them copy-on-write and do not grow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2

from scene_model.data.decode import load_frame
from scene_model.data.mot_format import GroundTruth, SequenceInfo, read_gt, read_seqinfo
from scene_model.data.transforms import apply_clip_transform
from scene_model.data.types import TargetFrame


@dataclass
class SequenceRecord:
    """One sequence: its seqinfo, its boxes (None for a split without gt) and a per-frame offset table."""

    info: SequenceInfo
    gt: GroundTruth | None
    offsets: np.ndarray  # int64[length + 2]: boxes of frame f are gt[offsets[f]:offsets[f + 1]]

    @classmethod
    def load(cls, seq_dir: Path, with_gt: bool, class_ids: tuple[int, ...] | None) -> SequenceRecord:
        info = read_seqinfo(seq_dir)
        gt = read_gt(info, class_ids) if with_gt else None
        frames = gt.frames if gt is not None else np.zeros(0, dtype=np.int32)
        offsets = np.searchsorted(frames, np.arange(0, info.length + 2), side="left").astype(np.int64)
        return cls(info=info, gt=gt, offsets=offsets)

    def boxes_of(self, frame: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes float[N,4] pixels xywh, track ids int64[N], classes int32[N]) of a 1-based frame."""
        if self.gt is None:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int32)
        lo, hi = self.offsets[frame], self.offsets[frame + 1]
        return self.gt.boxes[lo:hi], self.gt.track_ids[lo:hi], self.gt.classes[lo:hi]


@dataclass
class Clip:
    """One window before collation; T' <= T frames (a short sequence gives a short window)."""

    frames: Tensor  # float[T', 3, H, W] normalised
    targets: list[TargetFrame]
    sequence_id: str
    frame_indices: Tensor  # long[T'], 1-based
    orig_size: tuple[int, int]  # (width, height) of the original images


class ClipDataset(Dataset):
    """Windows of ``clip_len`` frames.

    Training: every ``stride``-th start frame, the frame interval drawn per sample from
    1..``max_interval`` (shrunk where the sequence is too short for it). Evaluation: fixed windows
    every ``stride`` frames with interval 1.
    """

    def __init__(
        self,
        sequences: list[SequenceRecord],
        clip_len: int,
        transform: v2.Transform,
        train: bool,
        max_interval: int = 1,
        stride: int = 1,
        class_ids: tuple[int, ...] = (1,),
    ) -> None:
        if clip_len < 1:
            raise ValueError(f"clip_len must be >= 1, got {clip_len}")
        self.sequences = sequences
        self.clip_len = clip_len
        self.transform = transform
        self.train = train
        self.max_interval = max(1, int(max_interval)) if train else 1
        self.class_to_label = {int(c): i for i, c in enumerate(class_ids)}
        seq_index, starts = [], []
        for i, record in enumerate(sequences):
            last_start = max(1, record.info.length - clip_len + 1)
            seq_starts = np.arange(1, last_start + 1, max(1, int(stride)))
            seq_index.append(np.full(len(seq_starts), i, dtype=np.int32))
            starts.append(seq_starts.astype(np.int32))
        self.seq_index = np.concatenate(seq_index) if seq_index else np.zeros(0, np.int32)
        self.starts = np.concatenate(starts) if starts else np.zeros(0, np.int32)

    def __len__(self) -> int:
        return len(self.starts)

    def frame_numbers(self, index: int) -> np.ndarray:
        """1-based frame numbers of window ``index`` (random interval in training)."""
        record = self.sequences[self.seq_index[index]]
        start = int(self.starts[index])
        interval = 1
        if self.max_interval > 1 and self.clip_len > 1:
            interval = int(torch.randint(1, self.max_interval + 1, ()))
            fits = (record.info.length - start) // (self.clip_len - 1)
            interval = max(1, min(interval, fits))
        frames = start + interval * np.arange(self.clip_len)
        return frames[frames <= record.info.length]

    def __getitem__(self, index: int) -> Clip:
        record = self.sequences[self.seq_index[index]]
        numbers = self.frame_numbers(index)
        frames = torch.stack([load_frame(record.info.frame_path(int(n))) for n in numbers])
        per_frame = [record.boxes_of(int(n)) for n in numbers]
        boxes = torch.from_numpy(np.concatenate([p[0] for p in per_frame])).float()
        counts = [len(p[0]) for p in per_frame]
        frames, kept_boxes, kept_index = apply_clip_transform(self.transform, frames, boxes, counts)
        targets = []
        for n, (_, ids, classes), cxcywh, keep in zip(numbers, per_frame, kept_boxes, kept_index, strict=True):
            labels = torch.tensor([self.class_to_label.get(int(c), 0) for c in classes], dtype=torch.long)
            targets.append(
                TargetFrame(
                    center=cxcywh[:, :2].contiguous(),
                    size=cxcywh[:, 2:].contiguous(),
                    track_ids=torch.from_numpy(ids)[keep],
                    labels=labels[keep],
                    frame_index=int(n),
                )
            )
        return Clip(
            frames=frames,
            targets=targets,
            sequence_id=record.info.name,
            frame_indices=torch.from_numpy(numbers.astype(np.int64)),
            orig_size=(record.info.width, record.info.height),
        )

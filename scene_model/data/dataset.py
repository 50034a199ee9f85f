"""Windowed clips of T frames over MOTChallenge-layout sequences.

The sample index is two numpy arrays (sequence, start frame), and each sequence's boxes are numpy
arrays with a per-frame offset table, so loader workers share them copy-on-write and do not grow.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from scene_model.data.decode import BadFrameWarning, FrameGeometry, UnreadableFrameError, decode_frame
from scene_model.data.mot_format import GroundTruth, SequenceInfo, read_gt, read_seqinfo
from scene_model.data.transforms import ClipTransform
from scene_model.data.types import TargetFrame


@dataclass
class SequenceRecord:
    """One sequence: its seqinfo, its boxes (None for a split without gt), their class labels
    (0..C-1, the position of the gt class in ``class_ids``) and a per-frame offset table."""

    info: SequenceInfo
    gt: GroundTruth | None
    labels: np.ndarray  # int64[M]
    offsets: np.ndarray  # int64[length + 2]: boxes of frame f are gt[offsets[f]:offsets[f + 1]]

    @classmethod
    def load(cls, seq_dir: Path, require_gt: bool, class_ids: tuple[int, ...]) -> SequenceRecord:
        """Read seqinfo.ini and gt/gt.txt; without ``require_gt`` a missing gt.txt gives a sequence without boxes."""
        info = read_seqinfo(seq_dir)
        gt = read_gt(info, class_ids) if require_gt or info.gt_path.exists() else None
        frames = gt.frames if gt is not None else np.zeros(0, dtype=np.int32)
        labels = np.zeros(len(frames), dtype=np.int64)
        if gt is not None:
            for label, class_id in enumerate(class_ids):
                labels[gt.classes == class_id] = label
        offsets = np.searchsorted(frames, np.arange(0, info.length + 2), side="left").astype(np.int64)
        return cls(info=info, gt=gt, labels=labels, offsets=offsets)

    def boxes_of(self, frame: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes float[N,4] pixels xywh, track ids int64[N], labels int64[N]) of a 1-based frame."""
        if self.gt is None:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
        lo, hi = self.offsets[frame], self.offsets[frame + 1]
        return self.gt.boxes[lo:hi], self.gt.track_ids[lo:hi], self.labels[lo:hi]


@dataclass
class Clip:
    """One window before collation; T' <= T frames (a short sequence gives a short window)."""

    frames: Tensor  # float[T', 3, H, W] normalised
    targets: list[TargetFrame]
    sequence_id: str
    frame_indices: Tensor  # long[T'], 1-based
    orig_size: tuple[int, int]  # (height, width) of the original images
    skipped_frames: tuple[str, ...] = ()  # unreadable frames left out (data.skip_bad_frames)
    window_len: int | None = None  # a chain of windows of this many frames, each starting on the last frame of the one before


class ClipDataset(Dataset):
    """Windows of ``clip_len`` frames.

    Training: every ``stride``-th start frame, the frame interval drawn per sample from
    1..``max_interval`` (shrunk where the sequence is too short for it); with ``chain_len`` > 1 a sample
    is a chain of that many consecutive windows, each starting on the last frame of the one before
    (as the evaluation windows are laid), ``chain_len * (clip_len - 1) + 1`` frames in all, on which
    queries are carried from window to window. Evaluation: fixed windows every ``stride`` frames with
    interval 1, and a last window ending at the sequence's last frame, so that every frame is seen. A
    sequence shorter than a sample gives one short sample.

    With ``skip_bad_frames`` an unreadable frame is left out with a warning and the window takes the
    next frame at the same interval instead (a window near the sequence end becomes shorter); the
    skipped files travel with the clip so that the loader's owner can count them.
    """

    def __init__(
        self,
        sequences: list[SequenceRecord],
        clip_len: int,
        transform: ClipTransform,
        train: bool,
        max_interval: int,
        stride: int,
        skip_bad_frames: bool,
        chain_len: int,
    ) -> None:
        if clip_len < 1:
            raise ValueError(f"clip_len must be >= 1, got {clip_len}")
        if chain_len > 1 and (clip_len < 2 or not train):
            raise ValueError(f"chains of windows (chain_len={chain_len}) are for training, with clip_len >= 2")
        self.sequences = sequences
        self.window_len = clip_len if chain_len > 1 else None
        clip_len = chain_len * (clip_len - 1) + 1 if chain_len > 1 else clip_len
        self.clip_len = clip_len
        self.transform = transform
        self.train = train
        self.max_interval = max(1, int(max_interval)) if train else 1
        self.stride = max(1, int(stride))
        self.skip_bad_frames = skip_bad_frames
        seq_index, starts = [], []
        for i, record in enumerate(sequences):
            last_start = max(1, record.info.length - clip_len + 1)
            seq_starts = np.arange(1, last_start + 1, max(1, int(stride)))
            if not train and seq_starts[-1] != last_start:
                seq_starts = np.append(seq_starts, last_start)
            seq_index.append(np.full(len(seq_starts), i, dtype=np.int32))
            starts.append(seq_starts.astype(np.int32))
        self.seq_index = np.concatenate(seq_index) if seq_index else np.zeros(0, np.int32)
        self.starts = np.concatenate(starts) if starts else np.zeros(0, np.int32)

    @classmethod
    def evaluation(
        cls, sequences: list[SequenceRecord], clip_len: int, transform: ClipTransform, stride: int, skip_bad_frames: bool
    ) -> ClipDataset:
        """The evaluation windows: ``clip_len`` frames every ``stride`` frames, interval 1, one window each."""
        return cls(sequences, clip_len, transform, False, max_interval=1, stride=stride, skip_bad_frames=skip_bad_frames, chain_len=1)

    def __len__(self) -> int:
        return len(self.starts)

    def frame_numbers(self, index: int) -> np.ndarray:
        """1-based frame numbers of window ``index`` (in training: a random start within the window's
        ``stride`` frames, and a random interval)."""
        record = self.sequences[self.seq_index[index]]
        start = int(self.starts[index])
        if self.train and self.stride > 1:
            last_start = max(1, record.info.length - self.clip_len + 1)
            start = min(start + int(torch.randint(0, self.stride, ())), last_start)
        interval = 1
        if self.max_interval > 1 and self.clip_len > 1:
            interval = int(torch.randint(1, self.max_interval + 1, ()))
            fits = (record.info.length - start) // (self.clip_len - 1)
            interval = max(1, min(interval, fits))
        frames = start + interval * np.arange(self.clip_len)
        return frames[frames <= record.info.length]

    def _decode_window(
        self, record: SequenceRecord, numbers: np.ndarray, geometry: FrameGeometry
    ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """Decode the window's frames: (uint8[T',H,W,3], frame numbers kept, skipped files)."""
        info = record.info
        interval = int(numbers[1] - numbers[0]) if len(numbers) > 1 else 1
        following = range(int(numbers[-1]) + interval, info.length + 1, interval) if self.skip_bad_frames else ()
        decoded, kept, skipped = [], [], []
        for number in itertools.chain(numbers.tolist(), following):
            if len(kept) == len(numbers):
                break
            path = info.frame_path(number)
            try:
                decoded.append(decode_frame(path, (info.width, info.height), geometry))
                kept.append(number)
            except UnreadableFrameError as err:
                if not self.skip_bad_frames:
                    raise
                warnings.warn(f"{err}; frame skipped (data.skip_bad_frames=true)", BadFrameWarning, stacklevel=2)
                skipped.append(str(path))
        if not kept:
            raise UnreadableFrameError(
                f"no readable frame in the window of {info.directory} from frame {int(numbers[0])} "
                f"to its end (skipped {', '.join(skipped)})"
            )
        return np.stack(decoded), np.asarray(kept, dtype=np.int64), tuple(skipped)

    def __getitem__(self, index: int) -> Clip:
        record = self.sequences[self.seq_index[index]]
        info = record.info
        geometry = self.transform.plan(info.width, info.height)
        pixels, numbers, skipped = self._decode_window(record, self.frame_numbers(index), geometry)
        frames = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
        per_frame = [record.boxes_of(int(n)) for n in numbers]
        boxes = torch.from_numpy(np.concatenate([p[0] for p in per_frame]))
        counts = [len(p[0]) for p in per_frame]
        frames, kept_boxes, kept_index = self.transform(frames, boxes, counts, geometry, (info.height, info.width))
        targets = [
            TargetFrame(
                center=cxcywh[:, :2].contiguous(),
                size=cxcywh[:, 2:].contiguous(),
                track_ids=torch.from_numpy(ids)[keep],
                labels=torch.from_numpy(labels)[keep],
                frame_index=int(n),
            )
            for n, (_, ids, labels), cxcywh, keep in zip(numbers, per_frame, kept_boxes, kept_index, strict=True)
        ]
        return Clip(
            frames=frames,
            targets=targets,
            sequence_id=info.name,
            frame_indices=torch.from_numpy(numbers),
            orig_size=(info.height, info.width),
            skipped_frames=skipped,
            window_len=self.window_len,
        )

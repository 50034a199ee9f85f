"""Sequence inference: overlapping windows -> model -> linked tracks, in original image pixels."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
from torch import Tensor
from torch.utils.data import DataLoader

from scene_model.data.collate import collate_tracking
from scene_model.data.dataset import ClipDataset, SequenceRecord
from scene_model.data.transforms import ClipTransform
from scene_model.data.types import SceneBatch
from scene_model.errors import ConfigError
from scene_model.tracking.linker import TrackLinker
from scene_model.tracking.mot_results import empty_rows
from scene_model.tracking.predictions import boxes_in_pixels, prediction_scores

Predict = Callable[[SceneBatch], dict[str, Tensor]]


class SequenceTracker:
    """Tracks whole sequences with a window model (conf/eval: ``eval.tracker``).

    ``stride``: a window starts every ``stride`` frames (null: ``clip_len - 1``, one shared frame);
    it must be below ``clip_len`` so that consecutive windows share frames to be linked on. The
    thresholds are those of ``TrackLinker``.
    """

    def __init__(
        self,
        stride: int | None = None,
        start_threshold: float = 0.5,
        keep_threshold: float = 0.3,
        link_iou: float = 0.1,
        max_lost: int = 10,
        batch_size: int = 2,
        num_workers: int = 0,
    ) -> None:
        if not 0.0 <= keep_threshold <= start_threshold <= 1.0:
            raise ConfigError(
                f"eval.tracker: need 0 <= keep_threshold ({keep_threshold}) <= start_threshold ({start_threshold}) <= 1"
            )
        if batch_size < 1:
            raise ConfigError(f"eval.tracker.batch_size={batch_size}; expected >= 1")
        self.stride = stride
        self.linker_options = dict(
            start_threshold=start_threshold, keep_threshold=keep_threshold, link_iou=link_iou, max_lost=max_lost
        )
        self.batch_size = batch_size
        self.num_workers = num_workers

    def resolve_stride(self, clip_len: int) -> int:
        if clip_len < 2:
            raise ConfigError(f"sequence inference links windows on shared frames: needs data.clip_len >= 2, got {clip_len}")
        stride = clip_len - 1 if self.stride is None else int(self.stride)
        if not 1 <= stride < clip_len:
            raise ConfigError(
                f"eval.tracker.stride={self.stride}; expected 1 <= stride < data.clip_len={clip_len} "
                "(windows must overlap to be linked)"
            )
        return stride

    def windows(self, records: Sequence[SequenceRecord], clip_len: int, transform: ClipTransform) -> DataLoader:
        """The evaluation windows of ``records`` in order (the last one ends on the last frame),
        overlapping by ``clip_len - stride`` frames, batched as in validation."""
        dataset = ClipDataset(list(records), clip_len, transform, train=False, stride=self.resolve_stride(clip_len))
        return DataLoader(
            dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers, collate_fn=collate_tracking
        )

    def track(self, predict: Predict, windows: Iterable[SceneBatch], sequences: Sequence[str]) -> dict[str, np.ndarray]:
        """Run ``predict`` over ``windows`` and link them: {sequence: rows float64[N, 7]} for every
        name of ``sequences`` (a sequence without a box gets empty rows)."""
        linkers: dict[str, TrackLinker] = {}
        rows: dict[str, list[np.ndarray]] = {name: [] for name in sequences}
        for batch in windows:
            outputs = predict(batch)
            boxes = boxes_in_pixels(outputs, batch)
            scores = prediction_scores(outputs).float().cpu()
            for b, name in enumerate(batch.sequence_ids):
                valid = ~batch.padding_mask[b].cpu()
                linker = linkers.setdefault(name, TrackLinker(**self.linker_options))
                frames = batch.frame_indices[b][valid].numpy()
                rows.setdefault(name, []).append(linker.step(frames, boxes[b][valid], scores[b][valid]))
        return {name: np.concatenate(parts) if parts else empty_rows() for name, parts in rows.items()}

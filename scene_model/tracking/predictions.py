"""Model outputs of a batch of windows -> scores and boxes in the pixels of the original images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from scene_model.boxes import image_scale, output_boxes, to_pixels
from scene_model.data.types import SceneBatch
from scene_model.models.head import prediction_scores


def pixel_scale(batch: SceneBatch) -> tuple[Tensor, Tensor]:
    """(scale, limits), float[B, 4] each, of ``boxes.image_scale`` for each sample of ``batch``: the
    model predicts in 0..1 of the padded canvas [H, W] of the batch, sample b occupies its top-left
    ``image_sizes[b]``, resized from ``orig_sizes[b]``."""
    if batch.image_sizes is None or batch.orig_sizes is None:
        raise ValueError("pixel coordinates need SceneBatch.image_sizes and orig_sizes (set by collate_tracking)")
    return image_scale(tuple(batch.frames.shape[-2:]), batch.image_sizes, batch.orig_sizes)


@dataclass
class WindowPrediction:
    """What the tracker keeps of one window: its frames and every query's box and score there, and what
    the association keeps of each query (``Association.window_features``)."""

    sequence: str
    frames: np.ndarray  # int64[T'], 1-based, increasing (padded frames left out)
    boxes: Tensor  # float[T', N, 4] (x1, y1, x2, y2) pixels of the original images, on the CPU
    scores: Tensor  # float[T', N], on the CPU
    features: Tensor | None = None  # float[N, f], on the CPU

    @property
    def key(self) -> tuple[str, int]:
        """(sequence, first frame): the window's place in its sequence."""
        return self.sequence, int(self.frames[0]) if len(self.frames) else 0


def window_predictions(outputs: dict[str, Tensor], batch: SceneBatch, features: Tensor | None = None) -> list[WindowPrediction]:
    """The model outputs of ``batch`` (boxes and scores, the ``aux`` outputs are not read) and the
    association's ``features`` float[B, N, f], one WindowPrediction per sample, brought to the CPU in one copy."""
    parts = [output_boxes(outputs), prediction_scores(outputs)[..., None]]
    frames_count = parts[0].shape[1]
    if features is not None:
        parts.append(features[:, None].expand(-1, frames_count, -1, -1))
    host = torch.cat([p.to(parts[0].dtype) for p in parts], dim=-1).float().cpu()
    scale, limits = pixel_scale(batch)
    boxes = to_pixels(host[..., :4], scale[:, None, None, :], limits[:, None, None, :])
    scores = host[..., 4]
    windows = []
    for b, name in enumerate(batch.sequence_ids):
        # Frame numbers from the host-side targets (-1 = padded frame): the device copies are not read.
        frames = np.array([target.frame_index for target in batch.targets[b]], dtype=np.int64)
        valid = torch.from_numpy(frames >= 0)
        kept = host[b, 0, :, 5:] if features is not None else None
        windows.append(WindowPrediction(name, frames[valid.numpy()], boxes[b][valid], scores[b][valid], kept))
    return windows

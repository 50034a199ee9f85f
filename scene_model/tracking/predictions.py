"""Model outputs of a batch of windows -> scores and boxes in the pixels of the original images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torchvision.ops import box_convert

from scene_model.data.types import SceneBatch


def prediction_scores(outputs: dict[str, Tensor]) -> Tensor:
    """Per query and frame, the one score the tracker thresholds: the existence probability (whether
    the query's object is visible in that frame), float[..., Q].

    It is trained with a plain BCE, so it reads as a probability and a threshold of 0.5 means what it
    says; the focal-trained class head (whose probabilities focal loss keeps well below 1) says which
    class. With one class the two estimate the same thing, and their product would square it.
    """
    return outputs["exist_conf"].squeeze(-1)


def boxes_in_pixels(outputs: dict[str, Tensor], batch: SceneBatch) -> Tensor:
    """Predicted boxes as (x1, y1, x2, y2) pixels of each sample's original images, float[B, T, Q, 4].

    The model predicts (cx, cy, w, h) in 0..1 of the padded canvas [H, W] of the batch; sample b
    occupies the top-left ``image_sizes[b]`` = (h, w) of it, resized from ``orig_sizes[b]`` = (W0, H0).
    Boxes are clipped to the original image.
    """
    if batch.image_sizes is None or batch.orig_sizes is None:
        raise ValueError("boxes_in_pixels needs SceneBatch.image_sizes and orig_sizes (set by collate_tracking)")
    canvas_h, canvas_w = batch.frames.shape[-2:]
    cxcywh = torch.cat([outputs["bbox_center"], outputs["bbox_size"]], dim=-1).float().cpu()
    image_h, image_w = batch.image_sizes[:, 0].float(), batch.image_sizes[:, 1].float()
    orig_w, orig_h = batch.orig_sizes[:, 0].float(), batch.orig_sizes[:, 1].float()
    scale_x = canvas_w * orig_w / image_w
    scale_y = canvas_h * orig_h / image_h
    scale = torch.stack([scale_x, scale_y, scale_x, scale_y], dim=-1)[:, None, None, :]
    xyxy = box_convert(cxcywh * scale, "cxcywh", "xyxy")
    limits = torch.stack([orig_w, orig_h, orig_w, orig_h], dim=-1)[:, None, None, :]
    return torch.minimum(xyxy.clamp(min=0), limits)


@dataclass
class WindowPrediction:
    """What the tracker keeps of one window: its frames and every query's box and score there."""

    sequence: str
    frames: np.ndarray  # int64[T'], 1-based, increasing (padded frames left out)
    boxes: Tensor  # float[T', Q, 4] (x1, y1, x2, y2) pixels of the original images, on the CPU
    scores: Tensor  # float[T', Q], on the CPU

    @property
    def key(self) -> tuple[str, int]:
        """(sequence, first frame): the window's place in its sequence."""
        return self.sequence, int(self.frames[0]) if len(self.frames) else 0


def window_predictions(outputs: dict[str, Tensor], batch: SceneBatch) -> list[WindowPrediction]:
    """The model outputs of ``batch`` (boxes and scores, the ``aux`` outputs are not read), one
    WindowPrediction per sample, moved to the CPU."""
    boxes = boxes_in_pixels(outputs, batch)
    scores = prediction_scores(outputs).float().cpu()
    padding = batch.padding_mask.cpu()
    windows = []
    for b, name in enumerate(batch.sequence_ids):
        valid = ~padding[b]
        frames = batch.frame_indices[b][valid].numpy()
        windows.append(WindowPrediction(name, frames, boxes[b][valid], scores[b][valid]))
    return windows

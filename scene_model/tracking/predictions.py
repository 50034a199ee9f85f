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


def pixel_scale(batch: SceneBatch) -> tuple[Tensor, Tensor]:
    """(scale, limits), float[B, 4] each: canvas 0..1 (cx, cy, w, h) times ``scale`` = pixels of each
    sample's original images; ``limits`` = (W0, H0, W0, H0), the original image size.

    The model predicts in 0..1 of the padded canvas [H, W] of the batch; sample b occupies the top-left
    ``image_sizes[b]`` = (h, w) of it, resized from ``orig_sizes[b]`` = (W0, H0).
    """
    if batch.image_sizes is None or batch.orig_sizes is None:
        raise ValueError("pixel coordinates need SceneBatch.image_sizes and orig_sizes (set by collate_tracking)")
    canvas_h, canvas_w = batch.frames.shape[-2:]
    image_h, image_w = batch.image_sizes[:, 0].float(), batch.image_sizes[:, 1].float()
    orig_w, orig_h = batch.orig_sizes[:, 0].float(), batch.orig_sizes[:, 1].float()
    scale_x = canvas_w * orig_w / image_w
    scale_y = canvas_h * orig_h / image_h
    return torch.stack([scale_x, scale_y, scale_x, scale_y], dim=-1), torch.stack([orig_w, orig_h, orig_w, orig_h], dim=-1)


def to_pixels(cxcywh: Tensor, scale: Tensor, limits: Tensor) -> Tensor:
    """Canvas 0..1 (cx, cy, w, h) [..., 4] of one sample (or broadcast over samples) -> (x1, y1, x2, y2)
    pixels of its original images, clipped to them."""
    xyxy = box_convert(cxcywh * scale, "cxcywh", "xyxy")
    return torch.minimum(xyxy.clamp(min=0), limits)


def boxes_in_pixels(outputs: dict[str, Tensor], batch: SceneBatch) -> Tensor:
    """Predicted boxes as (x1, y1, x2, y2) pixels of each sample's original images, float[B, T, Q, 4],
    clipped to the original image (see ``pixel_scale``)."""
    scale, limits = pixel_scale(batch)
    cxcywh = torch.cat([outputs["bbox_center"], outputs["bbox_size"]], dim=-1).float().cpu()
    return to_pixels(cxcywh, scale[:, None, None, :], limits[:, None, None, :])


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
    WindowPrediction per sample, brought to the CPU in one copy."""
    host = torch.cat([outputs["bbox_center"], outputs["bbox_size"], prediction_scores(outputs)[..., None]], dim=-1)
    host = host.float().cpu()
    scale, limits = pixel_scale(batch)
    boxes = to_pixels(host[..., :4], scale[:, None, None, :], limits[:, None, None, :])
    scores = host[..., 4]
    windows = []
    for b, name in enumerate(batch.sequence_ids):
        # Frame numbers from the host-side targets (-1 = padded frame): the device copies are not read.
        frames = np.array([target.frame_index for target in batch.targets[b]], dtype=np.int64)
        valid = torch.from_numpy(frames >= 0)
        windows.append(WindowPrediction(name, frames[valid.numpy()], boxes[b][valid], scores[b][valid]))
    return windows

"""Clip-consistent transforms on torchvision.transforms.v2.

A clip travels as one ``tv_tensors.Video`` [T,3,H,W] with the boxes of all its frames in one
``tv_tensors.BoundingBoxes`` [sum N, 4]; a v2 transform draws its random parameters once per call,
so every frame of the clip gets the same resize, crop, flip and colour jitter, and the boxes follow.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_clip_transform(
    train: bool,
    short_sides: Sequence[int] = (160,),
    max_size: int = 1333,
    hflip: float = 0.5,
    crop: bool = False,
    crop_scale: tuple[float, float] = (0.6, 1.0),
    color_jitter: float = 0.0,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Transform:
    """The clip pipeline: (crop) -> multi-scale resize -> (flip, colour jitter) -> float -> normalise.

    At evaluation only the first short side is used and nothing random is applied.
    """
    steps: list[v2.Transform] = []
    if train and crop:
        steps.append(_RandomClipCrop(crop_scale))
    if train and len(short_sides) > 1:
        steps.append(v2.RandomShortestSize(min_size=list(short_sides), max_size=max_size, antialias=True))
    else:
        steps.append(v2.Resize(size=int(short_sides[0]), max_size=max_size, antialias=True))
    if train and hflip > 0:
        steps.append(v2.RandomHorizontalFlip(p=hflip))
    if train and color_jitter > 0:
        steps.append(
            v2.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter, hue=color_jitter / 4)
        )
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std))]
    return v2.Compose(steps)


class _RandomClipCrop(v2.Transform):
    """Crop a random fraction of the frame, the same window for the whole clip."""

    def __init__(self, scale: tuple[float, float]) -> None:
        super().__init__()
        self.scale = scale

    def make_params(self, flat_inputs: list) -> dict:
        height, width = v2.functional.get_size(next(i for i in flat_inputs if isinstance(i, tv_tensors.Video)))
        fraction = float(torch.empty(1).uniform_(*self.scale))
        crop_h, crop_w = max(1, int(height * fraction)), max(1, int(width * fraction))
        top = int(torch.randint(0, height - crop_h + 1, ()))
        left = int(torch.randint(0, width - crop_w + 1, ()))
        return dict(top=top, left=left, height=crop_h, width=crop_w)

    def transform(self, inpt, params: dict):
        return self._call_kernel(v2.functional.crop, inpt, **params)


def apply_clip_transform(
    transform: v2.Transform, frames: Tensor, boxes: Tensor, counts: Sequence[int], min_size: float = 1.0
) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """Transform a clip and its boxes together.

    frames: uint8[T,3,H,W]; boxes: float[sum N, 4] (left, top, width, height) pixels; counts: N per frame.
    Returns normalised frames float[T,3,H',W'], per frame the kept boxes as (cx, cy, w, h) in 0..1 of
    the new canvas, and per frame the indices (into that frame's boxes) that were kept: boxes that a
    crop pushed out of the frame, or that became smaller than ``min_size`` pixels, are dropped.
    """
    height, width = frames.shape[-2:]
    video = tv_tensors.Video(frames)
    bbs = tv_tensors.BoundingBoxes(boxes, format="XYWH", canvas_size=(height, width))
    video, bbs = transform(video, bbs)
    new_h, new_w = video.shape[-2:]
    xyxy = v2.functional.convert_bounding_box_format(bbs, new_format=tv_tensors.BoundingBoxFormat.XYXY)
    xyxy = v2.functional.clamp_bounding_boxes(xyxy).as_subclass(Tensor)
    keep = ((xyxy[:, 2] - xyxy[:, 0]) >= min_size) & ((xyxy[:, 3] - xyxy[:, 1]) >= min_size)
    scale = torch.tensor([new_w, new_h, new_w, new_h], dtype=torch.float32)
    cxcywh = torch.cat([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], dim=1) / scale
    per_frame_boxes, per_frame_keep = [], []
    for chunk_boxes, chunk_keep in zip(cxcywh.split(list(counts)), keep.split(list(counts)), strict=True):
        per_frame_boxes.append(chunk_boxes[chunk_keep])
        per_frame_keep.append(chunk_keep.nonzero().squeeze(1))
    return video.as_subclass(Tensor), per_frame_boxes, per_frame_keep

"""Clip-consistent transforms: one random draw per clip, boxes travel with the frames.

The geometry of a clip (random crop, multi-scale resize with a max size) is drawn first by
``ClipTransform.plan`` and applied while decoding (``decode.decode_frame``: each frame decoded once,
at reduced scale when possible, and resized once), so no second resize happens here. The boxes take
the same crop and resize through torchvision.transforms.v2's box kernels. The rest runs on the whole
clip as one ``tv_tensors.Video`` [T,3,H,W] with the boxes of all its frames in one
``tv_tensors.BoundingBoxes``: a v2 transform draws its random parameters once per call, so every
frame gets the same flip and colour jitter, and the boxes follow.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from scene_model.boxes import from_canvas_pixels
from scene_model.data.decode import FrameGeometry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resized_size(height: int, width: int, short_side: int, max_size: int | None = None) -> tuple[int, int]:
    """(height, width) after resizing the shorter side to ``short_side`` with the longer side capped
    at ``max_size``: the rule of ``v2.Resize(size=short_side, max_size=max_size)``."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = int(short_side), int(short_side * long / short)
    if max_size is not None and new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), int(max_size)
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    return max(1, new_h), max(1, new_w)


class ClipTransform:
    """The clip pipeline: (random crop) -> multi-scale resize -> (flip, colour jitter) -> float -> normalise.

    Training draws, once per clip: a crop with probability ``crop`` (height and width each a
    fraction in ``crop_scale`` of the frame), a shorter side from ``short_sides`` (the longer side
    capped at ``max_size``), a horizontal flip with probability ``hflip``, a brightness, contrast and
    saturation jitter of strength ``color_jitter`` and a hue jitter of ``hue`` (0..0.5; on the CPU
    it costs about ten times the other three together, torchvision going through HSV). Evaluation
    (``evaluation``) uses one short side and draws nothing. Frames are normalised with ImageNet's
    mean and standard deviation (the backbones' pretraining). Boxes that a crop pushes out of the frame, or that
    end up smaller than ``min_box_size`` output pixels, are dropped; the others keep their track ids.
    """

    def __init__(
        self,
        train: bool,
        short_sides: Sequence[int],
        max_size: int | None,
        min_box_size: float,
        hflip: float,
        crop: float,
        crop_scale: Sequence[float],
        color_jitter: float,
        hue: float,
    ) -> None:
        if not short_sides:
            raise ValueError("short_sides needs at least one size")
        low, high = (float(v) for v in crop_scale)
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must be two fractions 0 < low <= high <= 1, got {tuple(crop_scale)}")
        self.train = train
        self.short_sides = tuple(int(s) for s in short_sides) if train else (int(short_sides[0]),)
        self.max_size = max_size
        self.crop = float(crop) if train else 0.0
        self.crop_scale = (low, high)
        self.min_box_size = min_box_size
        steps: list[v2.Transform] = []
        if train and hflip > 0:
            steps.append(v2.RandomHorizontalFlip(p=hflip))
        if train and (color_jitter > 0 or hue > 0):
            steps += [
                v2.ToDtype(torch.float32, scale=True),  # jitter on floats: about twice as fast as on uint8
                v2.ColorJitter(brightness=color_jitter or None, contrast=color_jitter or None,
                               saturation=color_jitter or None, hue=hue or None),
                v2.Normalize(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD), inplace=True),
            ]
        else:  # the 1/255 folded into the normalisation: one pass over the frames fewer
            steps += [
                v2.ToDtype(torch.float32, scale=False),
                v2.Normalize(mean=[255 * m for m in IMAGENET_MEAN], std=[255 * s for s in IMAGENET_STD], inplace=True),
            ]
        self.per_clip = v2.Compose(steps)

    @classmethod
    def evaluation(cls, short_side: int, max_size: int | None, min_box_size: float) -> ClipTransform:
        """The evaluation pipeline: one size, nothing drawn (no crop, flip or jitter)."""
        return cls(False, (short_side,), max_size, hflip=0.0, crop=0.0, crop_scale=(1.0, 1.0), color_jitter=0.0, hue=0.0,
                   min_box_size=min_box_size)

    def plan(self, width: int, height: int) -> FrameGeometry:
        """Draw the crop and the output size of one clip whose frames are ``width`` x ``height``."""
        left, top, crop_w, crop_h = 0, 0, width, height
        if self.crop > 0 and float(torch.rand(())) < self.crop:
            low, high = self.crop_scale
            fractions = torch.empty(2).uniform_(low, high).tolist()
            crop_w, crop_h = max(1, round(width * fractions[0])), max(1, round(height * fractions[1]))
            left = int(torch.randint(0, width - crop_w + 1, ()))
            top = int(torch.randint(0, height - crop_h + 1, ()))
        short_side = self.short_sides[int(torch.randint(len(self.short_sides), ()))]
        return FrameGeometry(crop=(left, top, crop_w, crop_h), out_size=resized_size(crop_h, crop_w, short_side, self.max_size))

    def __call__(
        self,
        frames: Tensor,
        boxes: Tensor,
        counts: Sequence[int],
        geometry: FrameGeometry,
        image_size: tuple[int, int],
    ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Finish a clip decoded with ``geometry``.

        frames: uint8[T,3,H',W'] already cropped and resized to ``geometry.out_size``; boxes:
        float[sum N, 4] (left, top, width, height) in pixels of the original ``image_size`` (height,
        width); counts: N per frame. Returns normalised frames float[T,3,H',W'], per frame the kept
        boxes as (cx, cy, w, h) in 0..1 of the output canvas, and per frame the indices (into that
        frame's boxes) that were kept.
        """
        if tuple(frames.shape[-2:]) != tuple(geometry.out_size):
            raise ValueError(f"frames are {tuple(frames.shape[-2:])}, the clip geometry says {geometry.out_size}")
        left, top, crop_w, crop_h = geometry.crop
        height, width = image_size
        bbs = tv_tensors.BoundingBoxes(boxes, format="XYWH", canvas_size=(height, width))
        bbs = F.convert_bounding_box_format(bbs, new_format=tv_tensors.BoundingBoxFormat.XYXY)
        bbs = F.crop(bbs, top=top, left=left, height=crop_h, width=crop_w)
        bbs = F.resize(bbs, size=list(geometry.out_size))
        video, bbs = self.per_clip(tv_tensors.Video(frames), bbs)
        xyxy = F.clamp_bounding_boxes(bbs).as_subclass(Tensor)
        keep = ((xyxy[:, 2] - xyxy[:, 0]) >= self.min_box_size) & ((xyxy[:, 3] - xyxy[:, 1]) >= self.min_box_size)
        cxcywh = from_canvas_pixels(xyxy, geometry.out_size)
        per_frame_boxes, per_frame_keep = [], []
        for chunk_boxes, chunk_keep in zip(cxcywh.split(list(counts)), keep.split(list(counts)), strict=True):
            per_frame_boxes.append(chunk_boxes[chunk_keep])
            per_frame_keep.append(chunk_keep.nonzero().squeeze(1))
        return video.as_subclass(Tensor), per_frame_boxes, per_frame_keep

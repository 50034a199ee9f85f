"""Boxes: their forms, and the conversions between them, in one place.

Every box tensor is [..., 4] in one of these forms:

- ``cxcywh`` in 0..1 of the canvas (the padded frame the model sees): centre and size. The form of the
  ground truth (``TargetFrame.boxes``, ``TrackTargets.boxes``), of the model's outputs (whose public
  keys ``bbox_center`` and ``bbox_size`` are its two halves: ``output_boxes`` joins them), of the
  decoder's reference boxes, the encoder's anchors and the denoising queries.
- box logits: ``inverse_sigmoid`` of normalised ``cxcywh``, what the decoder refines layer by layer.
- ``xyxy``: corners; normalised for GIoU, in pixels of the original image for the tracker and the
  diagnostics (``to_pixels``), in pixels of the canvas (or of an image drawn at its size) for the
  transforms and the pictures (``canvas_pixels``, ``from_canvas_pixels``).
- ``xywh``: MOTChallenge's (left, top, width, height) in pixels of the original image: gt.txt and
  result files.

Conversions between cxcywh, xyxy and xywh are torchvision's ``box_convert``; every conversion
between pixels and 0..1 (and every clipping to an image) is one of the functions below, and nowhere
else (``tests/test_boxes.py`` looks for the (W, H, W, H) vectors a hand conversion builds). Image
sizes are (height, width) everywhere (torch's shape order and torchvision's ``canvas_size``):
``image_sizes``, ``orig_sizes``, ``FrameGeometry.out_size``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor
from torchvision.ops import box_convert


def join(center: Tensor, size: Tensor) -> Tensor:
    """(cx, cy) [..., 2] and (w, h) [..., 2] -> cxcywh [..., 4]."""
    return torch.cat([center, size], dim=-1)


def output_boxes(outputs: Mapping[str, Tensor]) -> Tensor:
    """The cxcywh boxes of model outputs (``bbox_center`` and ``bbox_size`` joined), [..., Q, 4]."""
    return join(outputs["bbox_center"], outputs["bbox_size"])


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    """Logits of values in 0..1 (clamped to [eps, 1 - eps])."""
    x = x.clamp(eps, 1 - eps)
    return torch.log(x / (1 - x))


def image_scale(canvas: tuple[int, int], image: Tensor, original: Tensor) -> tuple[Tensor, Tensor]:
    """(scale, limits), float[..., 4] each: normalised cxcywh times ``scale`` are pixels of the original
    image; ``limits`` = (W0, H0, W0, H0), its size.

    The image sits in the top-left ``image`` = (h, w) of a ``canvas`` = (H, W) and was resized from
    ``original`` = (H0, W0) (long[..., 2] each).
    """
    limits = size_scale(original)
    return size_scale(canvas) * limits / size_scale(image), limits


def size_scale(size: tuple[int, int] | Tensor) -> Tensor:
    """float[..., 4] (W, H, W, H) of a (height, width) ``size`` (a pair, or long[..., 2]): normalised
    cxcywh times it are pixels of an image of that size, and pixels divided by it are normalised."""
    size = torch.as_tensor(size, dtype=torch.float32)
    height, width = size[..., 0], size[..., 1]
    return torch.stack([width, height, width, height], dim=-1)


def canvas_pixels(cxcywh: Tensor, size: tuple[int, int] | Tensor) -> Tensor:
    """Normalised cxcywh [..., 4] -> xyxy pixels of the image of ``size`` (height, width) the boxes are
    normalised to (the canvas, or a picture of it at another size), clipped to it."""
    scale = size_scale(size).to(cxcywh.device)
    return to_pixels(cxcywh.float(), scale, scale)


def from_canvas_pixels(xyxy: Tensor, size: tuple[int, int] | Tensor) -> Tensor:
    """xyxy pixels of an image of ``size`` (height, width) -> normalised cxcywh: the inverse of ``canvas_pixels``."""
    return from_pixels(xyxy.float(), size_scale(size).to(xyxy.device))


def clip_xywh(xywh: Tensor, size: tuple[int, int]) -> Tensor:
    """MOT (left, top, width, height) boxes [..., 4] clipped to an image of ``size`` (height, width);
    a box wholly outside keeps zero width or height."""
    limits = size_scale(size).to(xywh.dtype)
    xyxy = torch.minimum(box_convert(xywh, "xywh", "xyxy").clamp(min=0), limits)
    return box_convert(xyxy, "xyxy", "xywh")


def to_pixels(cxcywh: Tensor, scale: Tensor, limits: Tensor) -> Tensor:
    """Normalised cxcywh [..., 4] -> xyxy pixels of the original image, clipped to it (``image_scale``)."""
    xyxy = box_convert(cxcywh * scale, "cxcywh", "xyxy")
    return torch.minimum(xyxy.clamp(min=0), limits)


def from_pixels(xyxy: Tensor, scale: Tensor) -> Tensor:
    """xyxy pixels of the original image [..., 4] -> normalised cxcywh of a canvas (``image_scale``'s
    ``scale``): the inverse of ``to_pixels`` for a box inside the image."""
    return box_convert(xyxy, "xyxy", "cxcywh") / scale

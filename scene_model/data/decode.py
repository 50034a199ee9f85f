"""Decoding frames from disk at the size the model needs, once, with errors that name the file.

A JPEG is decoded at reduced scale when the target allows (PIL's draft mode: libjpeg's DCT scaling
by 1/2, 1/4 or 1/8, never below the target size), then the crop region is resized once to the final
size. The geometry is exact: draft scale s maps original pixel x to x / s, and PIL's ``resize(box=)``
maps the crop region onto the output canvas, so boxes transformed by the same crop and scale follow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from scene_model.errors import DataFormatError


class UnreadableFrameError(DataFormatError):
    """A frame file is missing, corrupt or truncated."""


class BadFrameWarning(UserWarning):
    """A frame could not be read and was skipped (``data.skip_bad_frames=true``)."""


@dataclass(frozen=True)
class FrameGeometry:
    """Where a clip's frames come from and what size they become (the same for every frame of a clip).

    crop: (left, top, width, height) in pixels of the original image; out_size: (height, width).
    """

    crop: tuple[int, int, int, int]
    out_size: tuple[int, int]

    @classmethod
    def full(cls, width: int, height: int, out_size: tuple[int, int]) -> FrameGeometry:
        return cls(crop=(0, 0, width, height), out_size=out_size)

    def draft_request(self, width: int, height: int) -> tuple[int, int]:
        """The smallest full-image size whose crop region still covers ``out_size`` pixel for pixel."""
        out_h, out_w = self.out_size
        _, _, crop_w, crop_h = self.crop
        return math.ceil(out_w * width / crop_w), math.ceil(out_h * height / crop_h)


def fit_image(image: Image.Image, geometry: FrameGeometry, scale: float = 1.0) -> np.ndarray:
    """Crop and resize a decoded image to uint8[H', W', 3] RGB of ``geometry.out_size``; ``scale`` is the
    factor by which the image is already smaller than the original (a JPEG decoded in draft mode)."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    left, top, crop_w, crop_h = geometry.crop
    box = (left / scale, top / scale, (left + crop_w) / scale, (top + crop_h) / scale)
    out_h, out_w = geometry.out_size
    return np.asarray(image.resize((out_w, out_h), Image.Resampling.BILINEAR, box=box))


def decode_frame(path: Path, expected_size: tuple[int, int], geometry: FrameGeometry) -> np.ndarray:
    """Decode one image to uint8[H', W', 3] RGB of ``geometry.out_size``.

    expected_size: (width, height) from seqinfo.ini; a file of another size is an error, since the
    boxes of gt.txt are in that image's pixels.
    """
    width, height = expected_size
    try:
        with Image.open(path) as image:
            if image.size != (width, height):
                raise DataFormatError(
                    f"{path} is {image.size[0]}x{image.size[1]} but seqinfo.ini says imWidth={width}, imHeight={height}"
                )
            drafted = image.draft("RGB", geometry.draft_request(width, height))  # None: not a JPEG
            return fit_image(image, geometry, scale=width / drafted[1][2] if drafted is not None else 1.0)
    except FileNotFoundError:
        raise UnreadableFrameError(f"missing frame {path}") from None
    except DataFormatError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise UnreadableFrameError(f"corrupt or truncated image {path}: {err}") from None

"""Decoding frames from disk, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor
from torchvision.io import ImageReadMode, decode_image, read_file

from scene_model.errors import DataFormatError


def load_frame(path: Path) -> Tensor:
    """Decode one image file to uint8[3, H, W] (RGB)."""
    try:
        data = read_file(str(path))
    except (OSError, RuntimeError) as err:
        raise DataFormatError(f"cannot read frame {path}: {err}") from None
    try:
        return decode_image(data, mode=ImageReadMode.RGB)
    except RuntimeError as err:
        raise DataFormatError(f"corrupt or truncated image {path}: {str(err).splitlines()[0]}") from None


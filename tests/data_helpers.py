"""Writing small MOTChallenge-layout sequences for the data tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SEQINFO = "[Sequence]\nname={name}\nimDir=img1\nframeRate=20\nseqLength={length}\nimWidth={width}\nimHeight={height}\nimExt=.jpg\n"


def write_sequence(
    root: Path,
    split: str = "train",
    name: str = "seq1",
    gt: str | None = "1,1,10,10,20,20,1,1,1\n",
    length: int = 10,
    width: int = 100,
    height: int = 50,
    rectangle: tuple[int, int, int, int] | None = None,
    frames: bool = False,
) -> Path:
    """A sequence directory; with ``frames`` (or a ``rectangle``) its JPEGs too: a dark frame with
    ``rectangle`` (left, top, width, height) painted white in every frame."""
    seq = root / split / name
    (seq / "img1").mkdir(parents=True)
    (seq / "seqinfo.ini").write_text(SEQINFO.format(name=name, length=length, width=width, height=height))
    if gt is not None:
        (seq / "gt").mkdir()
        (seq / "gt" / "gt.txt").write_text(gt)
    if frames or rectangle is not None:
        pixels = np.full((height, width, 3), 30, dtype=np.uint8)
        if rectangle is not None:
            left, top, w, h = rectangle
            pixels[top : top + h, left : left + w] = 230
        for t in range(1, length + 1):
            Image.fromarray(pixels).save(seq / "img1" / f"{t:08d}.jpg", quality=95)
    return seq

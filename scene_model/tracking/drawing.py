"""Drawing boxes on frames: colours per track, frame grids, captions.

Shared by the validation pictures (``training.callbacks``), the tracking evaluation's picture and the
video that ``python -m scene_model.tools.track`` writes, so that a track has the same colour in each.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor
from torchvision.ops import box_convert
from torchvision.transforms import v2
from torchvision.utils import draw_bounding_boxes, make_grid

from scene_model.boxes import canvas_pixels

PALETTE = [
    "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
    "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000", "#aaffc3",
]

PICTURE_MIN_HEIGHT = 256  # frames lower than this are enlarged in the validation pictures, to stay legible


def track_colour(track_id: int) -> str:
    """The colour of a query index or track id; the same id has the same colour in every picture."""
    return PALETTE[int(track_id) % len(PALETTE)]


def to_uint8(frames: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """Normalised frames float[..., 3, H, W] back to uint8 images on the CPU."""
    mean_t = torch.tensor(mean, device=frames.device)[:, None, None]
    std_t = torch.tensor(std, device=frames.device)[:, None, None]
    return ((frames * std_t + mean_t).clamp(0, 1) * 255).to(torch.uint8).cpu()


def fit_height(image: Tensor, min_height: int, max_height: int) -> tuple[Tensor, float]:
    """``image`` uint8[3, H, W] resized so that its height lies in [min_height, max_height] (small
    evaluation frames grow, so that boxes and labels survive TensorBoard's downscaling of a grid), and
    the factor applied."""
    height = image.shape[-2]
    scale = min(max(1.0, min_height / height), max_height / height)
    if scale != 1.0:
        size = [round(height * scale), round(image.shape[-1] * scale)]
        image = v2.functional.resize(image, size, antialias=True)
    return image, scale


def line_width(height: int) -> int:
    """Box outline width for a frame ``height`` pixels tall: about 2.5 % of it, at least 2, so that the
    boxes survive TensorBoard's shrinking of a picture to its card (about a fifth of a 2-frame-wide grid)."""
    return max(2, round(height / 40))


def draw_frame(image: Tensor, boxes: Tensor, ids: list[int], labels: list[str], gt_boxes: Tensor | None) -> Tensor:
    """One frame: ground truth (x1, y1, x2, y2 pixels) as thin white outlines, predictions as thick
    outlines in their track colour with ``labels``."""
    width = line_width(image.shape[-2])
    if gt_boxes is not None and len(gt_boxes):
        image = draw_bounding_boxes(image, gt_boxes.float(), colors="white", width=max(2, width // 2))
    if len(boxes):
        image = draw_bounding_boxes(image, boxes.float(), labels=labels, colors=[track_colour(i) for i in ids], width=width)
    return image


def render_clip(
    frames: Tensor,
    boxes: Tensor,
    scores: Tensor,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    score_threshold: float,
    gt_boxes: list[Tensor] | None = None,
    track_ids: Tensor | None = None,
    min_height: int = 1,
    nrow: int = 4,
) -> Tensor:
    """One clip as a grid, uint8[3, H', W'].

    frames float[T,3,H,W] normalised; boxes float[T,Q,4] (cx, cy, w, h) in 0..1; scores float[T,Q].
    A query keeps its colour (its track id) in every frame and is labelled ``id:score``; ground truth
    is drawn thin and white. Frames lower than ``min_height`` are enlarged.
    """
    ids = track_ids if track_ids is not None else torch.arange(boxes.shape[1])
    drawn = []
    for t, image in enumerate(to_uint8(frames, mean, std)):
        image, _ = fit_height(image, min_height, max(min_height, image.shape[-2]))
        size = tuple(image.shape[-2:])
        gt = canvas_pixels(gt_boxes[t].cpu(), size) if gt_boxes is not None else None
        keep = (scores[t] >= score_threshold).cpu()
        xyxy = canvas_pixels(boxes[t].cpu()[keep], size)
        kept_ids = ids[keep].tolist()
        labels = [f"{i}:{s:.2f}" for i, s in zip(kept_ids, scores[t].cpu()[keep].tolist(), strict=True)]
        drawn.append(draw_frame(image, xyxy, kept_ids, labels, gt))
    return make_grid(torch.stack(drawn), nrow=min(nrow, len(drawn)), padding=2)


def render_tracks(
    images: list[Tensor],
    boxes: list[Tensor],
    track_ids: list[Tensor],
    gt_boxes: list[Tensor] | None = None,
    max_height: int = 360,
    nrow: int = 4,
    min_height: int = 1,
) -> Tensor:
    """Frames of one sequence with tracked boxes coloured and labelled by track id, uint8[3, H', W'].

    images: uint8[3, H, W] per frame; boxes: float[N, 4] (x1, y1, x2, y2) pixels of that frame;
    track_ids: long[N]; gt_boxes (optional): float[M, 4] pixels, drawn thin and white. Frames are
    resized (boxes with them) into [min_height, max_height] to keep the picture light and legible.
    """
    drawn = []
    for t, image in enumerate(images):
        image, scale = fit_height(image, min_height, max_height)
        ids = track_ids[t].tolist()
        gt = gt_boxes[t].float() * scale if gt_boxes is not None else None
        drawn.append(draw_frame(image, boxes[t].float() * scale, ids, [str(i) for i in ids], gt))
    return make_grid(torch.stack(drawn), nrow=min(nrow, len(drawn)), padding=2)


CAPTION = (40, 40, 40)  # the caption band's colour, and with ``alert`` (nothing drawn, nothing written)
ALERT = (150, 20, 20)


def add_caption(grid: Tensor, lines: list[str], alert: bool = False) -> Tensor:
    """``grid`` uint8[3, H, W] with ``lines`` of text (wrapped to its width) in a band above it (dark
    grey; red with ``alert``), so that a picture says what it shows and which threshold drew it."""
    width = grid.shape[-1]
    size = max(10, min(20, width // 50))
    font = ImageFont.load_default(size=size)
    wrapped = [row for line in lines for row in wrap(line, font, width - 12)]
    band = Image.new("RGB", (width, (size + 5) * len(wrapped) + 8), ALERT if alert else CAPTION)
    pen = ImageDraw.Draw(band)
    for row, line in enumerate(wrapped):
        pen.text((6, 4 + row * (size + 5)), line, fill=(255, 255, 255), font=font)
    band_tensor = torch.from_numpy(np.array(band)).permute(2, 0, 1)
    return torch.cat([band_tensor, grid.cpu()], dim=1)


def wrap(text: str, font: ImageFont.FreeTypeFont, width: float) -> list[str]:
    """``text`` broken between words into rows no wider than ``width`` pixels in ``font``."""
    rows, row = [], ""
    for word in text.split(" "):
        candidate = f"{row} {word}" if row else word
        if row and font.getlength(candidate) > width:
            rows.append(row)
            candidate = word
        row = candidate
    return rows + [row]


def draw_tracks(image: np.ndarray, rows: np.ndarray, width: int = 2) -> np.ndarray:
    """uint8[H, W, 3] with each row's box (frame, id, left, top, width, height, ...) in its track's
    colour, labelled with its id; a new array."""
    if not len(rows):
        return image
    xyxy = box_convert(torch.from_numpy(rows[:, 2:6]).float(), "xywh", "xyxy")
    ids = rows[:, 1].astype(int).tolist()
    chw: Tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    drawn = draw_bounding_boxes(chw, xyxy, labels=[str(i) for i in ids], colors=[track_colour(i) for i in ids], width=width)
    return drawn.permute(1, 2, 0).numpy()

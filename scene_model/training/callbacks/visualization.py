"""Pictures of validation predictions.

``ValidationVisualizer``: the frames of the first validation clip with every query's boxes, a colour
per query (= per track within the clip). ``render_tracks``: frames of a whole sequence with the
tracker's boxes, a colour per track id across windows (drawn by the tracking evaluation callback).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor
from torchvision.io import write_png
from torchvision.ops import box_convert
from torchvision.transforms import v2
from torchvision.utils import draw_bounding_boxes, make_grid

from scene_model.data.types import SceneBatch
from scene_model.outputs import write_atomically
from scene_model.tracking.predictions import prediction_scores

PALETTE = [
    "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
    "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000", "#aaffc3",
]


def track_colour(track_id: int) -> str:
    """The colour of a query index or track id; the same id has the same colour in every picture."""
    return PALETTE[int(track_id) % len(PALETTE)]


def to_uint8(frames: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """Normalised frames float[..., 3, H, W] back to uint8 images on the CPU."""
    mean_t = torch.tensor(mean, device=frames.device)[:, None, None]
    std_t = torch.tensor(std, device=frames.device)[:, None, None]
    return ((frames * std_t + mean_t).clamp(0, 1) * 255).to(torch.uint8).cpu()


def render_clip(
    frames: Tensor,
    boxes: Tensor,
    scores: Tensor,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    score_threshold: float,
    gt_boxes: list[Tensor] | None = None,
    track_ids: Tensor | None = None,
) -> Tensor:
    """One clip as a grid, uint8[3, H', W'].

    frames float[T,3,H,W] normalised; boxes float[T,Q,4] (cx, cy, w, h) in 0..1; scores float[T,Q].
    A query keeps its colour (its track id) in every frame; ground truth is drawn thin and white.
    """
    height, width = frames.shape[-2:]
    images = to_uint8(frames, mean, std)
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    ids = track_ids if track_ids is not None else torch.arange(boxes.shape[1])
    drawn = []
    for t, image in enumerate(images):
        if gt_boxes is not None and len(gt_boxes[t]):
            gt_xyxy = box_convert(gt_boxes[t].float().cpu() * scale, "cxcywh", "xyxy")
            image = draw_bounding_boxes(image, gt_xyxy, colors="white", width=1)
        keep = (scores[t] >= score_threshold).cpu()
        if keep.any():
            xyxy = box_convert(boxes[t].float().cpu()[keep] * scale, "cxcywh", "xyxy")
            kept_ids = ids[keep].tolist()
            labels = [f"{i}:{s:.2f}" for i, s in zip(kept_ids, scores[t].cpu()[keep].tolist(), strict=True)]
            colours = [track_colour(i) for i in kept_ids]
            image = draw_bounding_boxes(image, xyxy, labels=labels, colors=colours, width=2)
        drawn.append(image)
    return make_grid(torch.stack(drawn), nrow=min(4, len(drawn)), padding=2)


def render_tracks(
    images: list[Tensor],
    boxes: list[Tensor],
    track_ids: list[Tensor],
    gt_boxes: list[Tensor] | None = None,
    max_height: int = 360,
    nrow: int = 4,
) -> Tensor:
    """Frames of one sequence with tracked boxes coloured and labelled by track id, uint8[3, H', W'].

    images: uint8[3, H, W] per frame (original size); boxes: float[N, 4] (x1, y1, x2, y2) pixels of
    that frame; track_ids: long[N]; gt_boxes (optional): float[M, 4] pixels, drawn thin and white.
    Frames taller than ``max_height`` are shrunk (boxes with them) to keep the picture light.
    """
    drawn = []
    for t, image in enumerate(images):
        scale = min(1.0, max_height / image.shape[-2])
        if scale < 1.0:
            size = [round(image.shape[-2] * scale), round(image.shape[-1] * scale)]
            image = v2.functional.resize(image, size, antialias=True)
        if gt_boxes is not None and len(gt_boxes[t]):
            image = draw_bounding_boxes(image, gt_boxes[t].float() * scale, colors="white", width=1)
        if len(boxes[t]):
            ids = track_ids[t].tolist()
            image = draw_bounding_boxes(
                image, boxes[t].float() * scale, labels=[str(i) for i in ids], colors=[track_colour(i) for i in ids], width=2
            )
        drawn.append(image)
    return make_grid(torch.stack(drawn), nrow=min(nrow, len(drawn)), padding=2)


def publish_grid(trainer: L.Trainer, tag: str, grid: Tensor, directory: Path | None) -> None:
    """Log ``grid`` (uint8 [3,H,W]) under ``tag`` to every logger that keeps images (TensorBoard,
    MLflow, W&B) and, with ``directory``, write it there as ``epoch_NNN.png``."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(tag, grid, global_step=trainer.global_step)
        elif isinstance(logger, MLFlowLogger):
            image = grid.permute(1, 2, 0).cpu().numpy()
            logger.experiment.log_image(logger.run_id, image, key=tag, step=trainer.global_step)
        elif isinstance(logger, WandbLogger):
            logger.log_image(key=tag, images=[grid.permute(1, 2, 0).cpu().numpy()], step=trainer.global_step)
    if directory is not None:
        path = directory / f"epoch_{trainer.current_epoch:03d}.png"
        write_atomically(path, lambda partial: write_png(grid, str(partial)), "picture")


class ValidationVisualizer(L.Callback):
    """On each validation, draws up to ``max_frames`` frames of the first clip of the first batch
    with the predictions scoring at least ``score_threshold``; logs the grid to TensorBoard and
    writes it as ``<output_dir>/epoch_<n>.png``."""

    def __init__(self, max_frames: int = 8, score_threshold: float = 0.5, output_dir: str | None = None) -> None:
        self.max_frames = max_frames
        self.score_threshold = score_threshold
        self.output_dir = Path(output_dir) if output_dir else None

    @rank_zero_only
    def on_validation_batch_end(self, trainer, pl_module, outputs, batch: SceneBatch, batch_idx, dataloader_idx=0):
        if batch_idx != 0 or trainer.sanity_checking or not isinstance(outputs, dict) or "outputs" not in outputs:
            return
        pred = outputs["outputs"]
        length = int((~batch.padding_mask[0]).sum())
        count = min(self.max_frames, length)
        datamodule = trainer.datamodule
        grid = render_clip(
            batch.frames[0, :count],
            torch.cat([pred["bbox_center"][0, :count], pred["bbox_size"][0, :count]], dim=-1),
            prediction_scores(pred)[0, :count],
            getattr(datamodule, "mean", (0.0, 0.0, 0.0)),
            getattr(datamodule, "std", (1.0, 1.0, 1.0)),
            self.score_threshold,
            gt_boxes=[torch.cat([f.center, f.size], dim=-1) for f in batch.targets[0][:count]],
        )
        publish_grid(trainer, "val/predictions", grid, self.output_dir)

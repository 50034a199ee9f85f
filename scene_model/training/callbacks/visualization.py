"""Pictures of validation predictions in the loggers.

``ValidationVisualizer``: the frames of the first validation clip with every query's boxes, a colour
per query (= per track within the clip). ``publish_grid``: a picture to every image logger and to a
PNG file (the tracking evaluation callback publishes its tracks picture through it). The drawing
itself is ``tracking.drawing``'s.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image
from torch import Tensor

from scene_model.boxes import output_boxes
from scene_model.data.types import SceneBatch
from scene_model.models.head import prediction_scores
from scene_model.outputs import write_atomically
from scene_model.tracking.drawing import PICTURE_MIN_HEIGHT, add_caption, render_clip


def logged_step(trainer: L.Trainer) -> int:
    """The step at which Lightning logs the scalars of the validation running now, so that its pictures and
    histograms sit beside them: inside a fit, a validation runs before the step count of the training
    batch that triggered it is raised, so its scalars land one below ``trainer.global_step``."""
    fitting = trainer.state.fn == TrainerFn.FITTING
    return max(trainer.global_step - 1, 0) if fitting else trainer.global_step


def publish_grid(trainer: L.Trainer, tag: str, grid: Tensor, directory: Path | None) -> None:
    """Log ``grid`` (uint8 [3,H,W]) under ``tag`` to every logger that keeps images (TensorBoard,
    MLflow, W&B) at the step of the validation's scalars and, with ``directory``, write it there as
    ``epoch_NNN.png``."""
    step = logged_step(trainer)
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(tag, grid, global_step=step)
        elif isinstance(logger, MLFlowLogger):
            image = grid.permute(1, 2, 0).cpu().numpy()
            logger.experiment.log_image(logger.run_id, image, key=tag, step=step)
        elif isinstance(logger, WandbLogger):
            logger.log_image(key=tag, images=[grid.permute(1, 2, 0).cpu().numpy()], step=step)
    if directory is not None:
        path = directory / f"epoch_{trainer.current_epoch:03d}.png"
        pixels = Image.fromarray(grid.permute(1, 2, 0).cpu().numpy())
        write_atomically(path, lambda partial: pixels.save(partial, format="PNG"), "picture")


class ValidationVisualizer(L.Callback):
    """On each validation, draws up to ``max_frames`` frames of the first clip of the first batch
    with the predictions scoring at least ``score_threshold`` and a caption with the counts (queries
    above the threshold, objects, the highest score when none passes); logs the grid to every image
    logger and writes it as ``<output_dir>/epoch_<n>.png``; ``max_frames`` 0 draws nothing."""

    def __init__(self, max_frames: int, score_threshold: float, output_dir: str | None) -> None:
        self.max_frames = max_frames
        self.score_threshold = score_threshold
        self.output_dir = Path(output_dir) if output_dir else None

    @rank_zero_only
    def on_validation_batch_end(self, trainer, pl_module, outputs, batch: SceneBatch, batch_idx, dataloader_idx=0):
        if self.max_frames == 0 or batch_idx != 0 or trainer.sanity_checking or not isinstance(outputs, dict) or "outputs" not in outputs:
            return
        pred = outputs["outputs"]
        frames = [target.frame_index for target in batch.targets[0] if target.frame_index >= 0]
        count = min(self.max_frames, len(frames))
        # One host copy: the first clip's boxes and scores.
        host = torch.cat([output_boxes(pred)[0, :count], prediction_scores(pred)[0, :count, :, None]], dim=-1)
        host = host.float().cpu()
        scores = host[..., 4]
        gt = [f.boxes for f in batch.targets[0][:count]]
        datamodule = trainer.datamodule
        grid = render_clip(
            batch.frames[0, :count],
            host[..., :4],
            scores,
            getattr(datamodule, "mean", (0.0, 0.0, 0.0)),
            getattr(datamodule, "std", (1.0, 1.0, 1.0)),
            self.score_threshold,
            gt_boxes=gt,
            min_height=PICTURE_MIN_HEIGHT,
            nrow=2,
        )
        above = (scores >= self.score_threshold).sum(-1).float().mean().item() if count else 0.0
        objects = sum(len(g) for g in gt) / max(count, 1)
        where = f"{batch.sequence_ids[0]} frames {frames[0]}-{frames[count - 1]}" if count else batch.sequence_ids[0]
        if above == 0:
            best = scores.max().item() if scores.numel() else 0.0
            first = f"NO QUERY SCORES >= {self.score_threshold:.2f} ({where}; highest {best:.2f}); objects {objects:.1f} per frame"
        else:
            first = f"{where}: queries scoring >= {self.score_threshold:.2f}: {above:.1f} of {scores.shape[-1]} per frame; objects {objects:.1f} per frame"
        grid = add_caption(grid, [first, "white: ground truth; colours: queries (query:score)"], alert=above == 0)
        publish_grid(trainer, "val/predictions", grid, self.output_dir)

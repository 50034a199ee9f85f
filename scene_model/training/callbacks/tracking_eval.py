"""Tracking evaluation during training and in evaluate-only runs.

Every ``every_n_epochs`` epochs (and at the last epoch) of a fit, and in every ``trainer.validate``
run, the validation loop itself tracks the val split: its windows come in order (each sequence's
overlapping evaluation windows one after the other, ``DancetrackDataModule.eval_windows``), and the
one forward of each window gives its losses, its picture and its tracks (the module's ``tracking``
session, set here, links them as they come; a model's track queries are carried from one window to
the next). At the end of the loop the tracks are written as MOTChallenge result files and scored
with TrackEval; HOTA, DetA, AssA, DetRe, DetPr, LocA, MOTA, IDF1 and IDSW are logged as
``val/track/<name>`` (so they reach TensorBoard and ``trainer.callback_metrics``, and can be
``optimized_metric``). With ``diagnostics`` the same forward yields the detection diagnostics
(``tracking.diagnostics``: counts, matched IoU, best-query recall, score AUC) as ``val/diag/<name>``,
the matched and unmatched score histograms in TensorBoard, two console lines and a ``diagnostics``
entry of the metrics JSON (without, ``val/diag/boxes_written`` only). An evaluate-only run also
tracks ``submit_split`` (no ground truth needed), writes its results and zips them for the evaluation
server.

Files under ``output_dir``: ``<split>/<sequence>.txt``, ``<split>_metrics.csv``/``.json``,
``<submit_split>/`` and ``<submit_split>.zip``; the picture ``<viz_dir>/epoch_NNN.png``.
With several processes each tracks its share of the sequences; rank zero writes and scores.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.trainer.states import TrainerFn
from torchvision.ops import box_convert

from scene_model.boxes import canvas_pixels, from_pixels
from scene_model.data.datamodule import EvalSplit
from scene_model.data.types import SceneBatch
from scene_model.errors import ConfigError, DataFormatError
from scene_model.outputs import write_atomically
from scene_model.tracking.diagnostics import HISTOGRAM_BINS, DetectionDiagnostics, format_diagnostics
from scene_model.tracking.drawing import PICTURE_MIN_HEIGHT, add_caption, render_tracks, to_uint8
from scene_model.tracking.mot_results import write_results, zip_results
from scene_model.tracking.options import TrackerOptions
from scene_model.tracking.predictions import pixel_scale
from scene_model.tracking.scoring import score_tracks
from scene_model.tracking.sequence_tracker import SequenceTracker, check_overlap
from scene_model.tracking.trackeval_metrics import HEADLINE, MotEvaluation
from scene_model.training.callbacks.visualization import logged_step, publish_grid

log = logging.getLogger(__name__)


class TrackingEvaluator(L.Callback):
    def __init__(
        self,
        tracker: TrackerOptions | Mapping[str, Any],
        every_n_epochs: int,
        submit_split: str | None,
        do_preproc: bool,
        output_dir: str,
        viz_frames: int,
        viz_dir: str | None,
        diagnostics: bool,
    ) -> None:
        options = tracker if isinstance(tracker, TrackerOptions) else TrackerOptions.from_mapping(tracker)
        self.tracker = SequenceTracker(options)
        self.every_n_epochs = int(every_n_epochs)
        self.submit_split = submit_split or None
        self.do_preproc = do_preproc
        self.output_dir = Path(output_dir)
        self.viz_frames = viz_frames
        self.viz_dir = Path(viz_dir) if viz_dir else None
        self.diagnose = diagnostics
        self.diagnostics_seconds = 0.0  # host time spent on the diagnostics in the last scored validation
        self.pass_state: tuple[EvalSplit, PictureFrames | None, DetectionDiagnostics | None] | None = None  # the validation being tracked

    def should_run(self, trainer: L.Trainer) -> bool:
        if trainer.sanity_checking:
            return False
        if trainer.state.fn == TrainerFn.VALIDATING:
            return True
        if trainer.state.fn != TrainerFn.FITTING or self.every_n_epochs <= 0:
            return False
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and trainer.max_epochs > 0 and epoch >= trainer.max_epochs
        return epoch % self.every_n_epochs == 0 or last

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Refuse windows that cannot be linked before training starts, not at the first validation."""
        validates = trainer.limit_val_batches != 0
        if validates and (stage == "validate" or (stage == "fit" and self.every_n_epochs > 0)):
            check_overlap(trainer.datamodule.clip_len, trainer.datamodule.val_stride)

    # --- tracking the validation split ---------------------------------------------------------------
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """On the epochs it scores, hand the module a tracking session: the validation loop's own
        forward of each window is linked into tracks as it runs (``validation_step``)."""
        self.pass_state = None
        if not self.should_run(trainer):
            return
        self.diagnostics_seconds = 0.0
        datamodule = trainer.datamodule
        split = datamodule.eval_split()
        diagnostics = DetectionDiagnostics(self.start_threshold) if self.diagnose else None
        picture = None
        if self.viz_frames > 0:
            first = split.sequences[0].info
            frames = np.unique(np.linspace(1, first.length, self.viz_frames).round().astype(int))
            picture = PictureFrames(first.name, set(frames.tolist()), datamodule.mean, datamodule.std)
        names = [record.info.name for record in datamodule.share_of(split, datamodule.process_share())]
        pl_module.tracking = self.tracker.session(names, pl_module.association)
        self.pass_state = (split, picture, diagnostics)

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: SceneBatch, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if self.pass_state is None or not isinstance(outputs, dict) or outputs.get("windows") is None:
            return
        _, picture, diagnostics = self.pass_state
        if diagnostics is not None:
            started = time.perf_counter()
            diagnostics.add_batch(outputs["windows"], batch)
            self.diagnostics_seconds += time.perf_counter() - started
        if picture is not None:
            picture.take(batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.pass_state is None:
            return
        split, picture, diagnostics = self.pass_state
        self.pass_state = None
        session, pl_module.tracking = pl_module.tracking, None
        if trainer.num_val_batches and trainer.num_val_batches[0] < len(trainer.val_dataloaders):
            log.warning(
                f"tracking val: {trainer.num_val_batches[0]} of {len(trainer.val_dataloaders)} validation batches "
                "(trainer.limit_val_batches): the sequences are scored on the frames those windows hold"
            )
        shares = all_shares(trainer, (session.results(), picture, diagnostics))
        results = {name: rows for share, _, _ in shares for name, rows in share.items()}
        picture = PictureFrames.merge([p for _, p, _ in shares if p is not None])
        diagnostics = DetectionDiagnostics.merge([d for _, _, d in shares]) if self.diagnose else None
        metrics, diagnosed = None, None
        if trainer.is_global_zero:
            evaluation, diagnosed = self.score(split, results, diagnostics)
            metrics = evaluation.combined
            if diagnostics is not None:
                started = time.perf_counter()
                log_histograms(trainer, diagnostics)
                self.diagnostics_seconds += time.perf_counter() - started
            if picture is not None:
                self.draw(trainer, picture, results[picture.sequence], diagnosed, evaluation.sequences[picture.sequence])
        metrics, diagnosed = trainer.strategy.broadcast((metrics, diagnosed), src=0)
        logged = {f"val/track/{name}": float(metrics[name]) for name in HEADLINE}
        logged.update({f"val/diag/{name}": float(value) for name, value in diagnosed.items()})
        pl_module.log_dict(logged, sync_dist=True)
        if trainer.state.fn == TrainerFn.VALIDATING and self.submit_split:
            self.write_submission(trainer, pl_module)

    @property
    def start_threshold(self) -> float:
        return self.tracker.options.start_threshold

    # --- scoring and the submission ---------------------------------------------------------------
    def score(
        self, split: EvalSplit, results: dict[str, np.ndarray], diagnostics: DetectionDiagnostics | None = None
    ) -> tuple[MotEvaluation, dict[str, float]]:
        """Write the results of ``split`` and score them; returns the evaluation and the
        diagnostics' numbers (only the boxes written without ``diagnostics``). The console gets the
        table, the diagnostics and a warning when no box was written."""
        results_dir = self.output_dir / split.name
        evaluation = score_tracks(results, split, results_dir, self.do_preproc)
        written = float(sum(len(rows) for rows in results.values()))
        diagnosed = {"boxes_written": written}
        if diagnostics is not None:
            started = time.perf_counter()
            diagnosed = diagnostics.summary(written, evaluation.combined["GT_Dets"])
            evaluation.diagnostics = {**diagnosed, "score_histograms": diagnostics.histograms()}
            self.diagnostics_seconds += time.perf_counter() - started
        write_atomically(self.output_dir / f"{split.name}_metrics.csv", evaluation.write_csv, "metrics")
        write_atomically(self.output_dir / f"{split.name}_metrics.json", evaluation.write_json, "metrics")
        report = evaluation.table()
        if diagnostics is not None:
            report += "\n" + format_diagnostics(diagnosed, self.start_threshold)
        log.info(f"tracking {split.name} ({results_dir}):\n{report}")
        if written == 0:
            best = f" (the highest score was {diagnosed['max_score']:.2f})" if "max_score" in diagnosed else ""
            log.warning(
                f"tracking {split.name}: the tracker wrote no box: no query reached eval.tracker.start_threshold="
                f"{self.start_threshold:g}{best}; every tracking metric is 0"
            )
        return evaluation, diagnosed

    def write_submission(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Track ``submit_split`` (its own windows: it is not the validation split) and write its result
        folder and zip (ground truth not needed)."""
        try:
            split = trainer.datamodule.eval_split(self.submit_split, require_gt=False)
        except DataFormatError as err:
            raise ConfigError(f"eval.submit_split={self.submit_split} (null to skip): {err}") from None
        part = (trainer.global_rank, trainer.world_size)
        shares = all_shares(trainer, pl_module.track_split(trainer.datamodule, split, self.tracker, part))
        if trainer.is_global_zero:
            results = {name: rows for share in shares for name, rows in share.items()}
            results_dir = write_results(self.output_dir / self.submit_split, results)
            archive = zip_results(results_dir)
            log.info(f"tracking {self.submit_split}: results for submission in {results_dir} and {archive}")

    # --- picture ----------------------------------------------------------------------------------
    def draw(self, trainer: L.Trainer, picture: PictureFrames, rows: np.ndarray, diagnosed: dict, metrics: dict) -> None:
        """The picture's frames with the tracked boxes coloured by track id, ground truth in white, and
        a caption with the sequence's counts and metrics and the thresholds (red when the tracker wrote
        nothing in the whole split). ``metrics``: the pictured sequence's."""
        if not picture.frames:
            return
        images, boxes, ids, gt = [], [], [], []
        for frame, (image, gt_xyxy, scale, canvas) in sorted(picture.frames.items()):
            mine = rows[rows[:, 0] == frame]
            xyxy = box_convert(torch.from_numpy(mine[:, 2:6]).float(), "xywh", "xyxy")  # original pixels
            images.append(image)
            boxes.append(canvas_pixels(from_pixels(xyxy, scale), canvas))  # the image sits top-left in the canvas
            ids.append(torch.from_numpy(mine[:, 1]).long())
            gt.append(gt_xyxy)
        grid = render_tracks(images, boxes, ids, gt_boxes=gt, min_height=PICTURE_MIN_HEIGHT, nrow=2)
        options = self.tracker.options
        nothing = diagnosed["boxes_written"] == 0
        thresholds = f"start {options.start_threshold:.2f}, keep {options.keep_threshold:.2f}"
        if nothing:
            best = f"; highest score {diagnosed['max_score']:.2f}" if "max_score" in diagnosed else ""
            first = f"NO BOX WRITTEN in the split: no query reached start_threshold {options.start_threshold:.2f}{best}"
        else:
            first = (
                f"{picture.sequence}: tracker ({thresholds}) wrote {len(rows)} boxes for {metrics['GT_Dets']:.0f} "
                f"ground-truth boxes; HOTA {metrics['HOTA']:.1f} DetA {metrics['DetA']:.1f} AssA {metrics['AssA']:.1f}"
            )
        grid = add_caption(grid, [first, "white: ground truth; colours: track ids"], alert=nothing)
        publish_grid(trainer, "val/tracks", grid, self.viz_dir)


def log_histograms(trainer: L.Trainer, diagnostics: DetectionDiagnostics) -> None:
    """The matched and unmatched score distributions as TensorBoard histograms, at the step of the
    validation's scalars."""
    matched, unmatched = diagnostics.scores()
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            for tag, values in (("val/diag/score_matched", matched), ("val/diag/score_unmatched", unmatched)):
                if len(values):
                    logger.experiment.add_histogram(tag, values, global_step=logged_step(trainer), bins=HISTOGRAM_BINS)


class PictureFrames:
    """The frames of the tracking picture, taken from the validation batches as they pass (no
    decoding of their own): frame number -> (uint8[3, h, w] image at the evaluation size, ground
    truth float[N, 4] (x1, y1, x2, y2) pixels of that image, the batch's ``pixel_scale`` of the sample
    (normalised -> original pixels), the batch's canvas (height, width))."""

    def __init__(self, sequence: str, wanted: set[int], mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.sequence, self.wanted, self.mean, self.std = sequence, wanted, mean, std
        self.frames: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[int, int]]] = {}

    def take(self, batch: SceneBatch) -> None:
        canvas = tuple(batch.frames.shape[-2:])
        scale = pixel_scale(batch)[0]
        for b, name in enumerate(batch.sequence_ids):
            if name != self.sequence:
                continue
            height, width = batch.image_sizes[b].tolist()
            for t, frame in enumerate(f.frame_index for f in batch.targets[b]):
                if frame not in self.wanted or frame in self.frames:
                    continue
                image = to_uint8(batch.frames[b, t, :, :height, :width], self.mean, self.std)
                gt = canvas_pixels(batch.targets[b][t].boxes.cpu(), canvas)
                self.frames[frame] = (image, gt, scale[b], canvas)

    @staticmethod
    def merge(pictures: list[PictureFrames]) -> PictureFrames | None:
        """One picture from every process's frames (None when there are none)."""
        for other in pictures[1:]:
            pictures[0].frames.update(other.frames)
        return pictures[0] if pictures else None


def all_shares(trainer: L.Trainer, share: Any) -> list[Any]:
    """Every process's ``share``, in rank order (``[share]`` in a single process)."""
    if trainer.world_size == 1 or not (dist.is_available() and dist.is_initialized()):
        return [share]
    shares: list[Any] = [None] * trainer.world_size
    dist.all_gather_object(shares, share)
    return shares

"""Tracking evaluation during training and in evaluate-only runs.

Every ``every_n_epochs`` epochs (and at the last epoch) of a fit, and in every ``trainer.validate``
run, the validation split is tracked as whole sequences, written as MOTChallenge result files and
scored with TrackEval; HOTA, DetA, AssA, MOTA, IDF1 and IDSW are logged as ``val/<name>`` (so they
reach TensorBoard and ``trainer.callback_metrics``, and can be ``optimized_metric``). An
evaluate-only run also writes the results of ``submit_split`` (no ground truth needed) and zips
them for the evaluation server.

Files under ``output_dir``: ``<split>/<sequence>.txt``, ``<split>_metrics.csv``/``.json``,
``<submit_split>/`` and ``<submit_split>.zip``; the picture ``<viz_dir>/epoch_NNN.png``.
With several processes each tracks a share of the sequences; rank zero writes and scores.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.trainer.states import TrainerFn

from scene_model.data.dataset import SequenceRecord
from scene_model.data.decode import FrameGeometry, decode_frame
from scene_model.data.types import SceneBatch
from scene_model.errors import ConfigError, DataFormatError
from scene_model.outputs import write_atomically
from scene_model.tracking.mot_results import write_results, zip_results
from scene_model.tracking.sequence_tracker import SequenceTracker
from scene_model.tracking.trackeval_metrics import HEADLINE, evaluate_mot
from scene_model.training.callbacks.visualization import publish_grid, render_tracks

log = logging.getLogger(__name__)


class TrackingEvaluator(L.Callback):
    def __init__(
        self,
        tracker: SequenceTracker,
        every_n_epochs: int = 1,
        submit_split: str | None = "test",
        do_preproc: bool = False,
        output_dir: str = "tracking",
        viz_frames: int = 8,
        viz_dir: str | None = None,
    ) -> None:
        self.tracker = tracker
        self.every_n_epochs = int(every_n_epochs)
        self.submit_split = submit_split or None
        self.do_preproc = do_preproc
        self.output_dir = Path(output_dir)
        self.viz_frames = viz_frames
        self.viz_dir = Path(viz_dir) if viz_dir else None
        self.last_metrics: dict[str, float] = {}

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

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.should_run(trainer):
            return
        datamodule = trainer.datamodule
        split = datamodule.splits["val"]
        results, records = self.track_split(trainer, pl_module, split, with_gt=True)
        metrics = None
        if trainer.is_global_zero:
            metrics = self.score(split, results, records, datamodule.root / split)
            self.draw(trainer, records[0], results[records[0].info.name])
        metrics = trainer.strategy.broadcast(metrics, src=0)
        self.last_metrics = metrics
        pl_module.log_dict({f"val/{name}": float(metrics[name]) for name in HEADLINE}, sync_dist=True)
        if trainer.state.fn == TrainerFn.VALIDATING and self.submit_split:
            self.write_submission(trainer, pl_module)

    # --- tracking ---------------------------------------------------------------------------------
    def track_split(
        self, trainer: L.Trainer, pl_module: L.LightningModule, split: str, with_gt: bool
    ) -> tuple[dict[str, np.ndarray], list[SequenceRecord]]:
        """Track every sequence of ``split`` (a share per process); every process gets all results."""
        datamodule = trainer.datamodule
        records = datamodule.load_split(split, require_gt=with_gt)
        mine = records[trainer.global_rank :: trainer.world_size]
        windows = self.tracker.windows(mine, datamodule.clip_len, datamodule.eval_transform)
        precision = trainer.precision_plugin

        def predict(batch: SceneBatch) -> dict:
            batch = batch.to(pl_module.device)
            with torch.no_grad(), precision.forward_context():
                return pl_module(batch.frames, batch.padding_mask, batch.image_sizes)

        was_training = pl_module.training
        pl_module.eval()
        started = time.perf_counter()
        try:
            results = self.tracker.track(predict, windows, [r.info.name for r in mine])
        finally:
            pl_module.train(was_training)
        seconds = time.perf_counter() - started
        log.info(f"tracked {len(mine)} {split} sequence(s), {len(windows.dataset)} windows, in {seconds:.1f} s")
        if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            shares: list[dict | None] = [None] * trainer.world_size
            dist.all_gather_object(shares, results)
            results = {name: rows for share in shares for name, rows in share.items()}
        return {r.info.name: results[r.info.name] for r in records}, records

    def score(self, split: str, results: dict[str, np.ndarray], records: list[SequenceRecord], gt_dir: Path) -> dict:
        """Write the results of ``split`` and score them; returns the combined metrics."""
        results_dir = write_results(self.output_dir / split, results)
        evaluation = evaluate_mot(
            gt_dir, results_dir, sequences={r.info.name: r.info.length for r in records}, do_preproc=self.do_preproc
        )
        write_atomically(self.output_dir / f"{split}_metrics.csv", evaluation.write_csv, "metrics")
        write_atomically(self.output_dir / f"{split}_metrics.json", evaluation.write_json, "metrics")
        log.info(f"tracking {split} ({results_dir}):\n{evaluation.table()}")
        return evaluation.combined

    def write_submission(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Track ``submit_split`` and write its result folder and zip (ground truth not needed)."""
        try:
            results, _ = self.track_split(trainer, pl_module, self.submit_split, with_gt=False)
        except DataFormatError as err:
            raise ConfigError(f"eval.submit_split={self.submit_split} (null to skip): {err}") from None
        if trainer.is_global_zero:
            results_dir = write_results(self.output_dir / self.submit_split, results)
            archive = zip_results(results_dir)
            log.info(f"tracking {self.submit_split}: results for submission in {results_dir} and {archive}")

    # --- picture ----------------------------------------------------------------------------------
    def draw(self, trainer: L.Trainer, record: SequenceRecord, rows: np.ndarray) -> None:
        """``viz_frames`` frames spread over the sequence, boxes coloured by track id."""
        if self.viz_frames <= 0:
            return
        frames = np.unique(np.linspace(1, record.info.length, self.viz_frames).round().astype(int))
        images, boxes, ids, gt = [], [], [], []
        for frame in frames:
            width, height = record.info.width, record.info.height
            pixels = decode_frame(record.info.frame_path(int(frame)), (width, height), FrameGeometry.full(width, height, (height, width)))
            images.append(torch.from_numpy(pixels).permute(2, 0, 1))
            mine = rows[rows[:, 0] == frame]
            xywh = torch.from_numpy(mine[:, 2:6]).float()
            boxes.append(torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1))
            ids.append(torch.from_numpy(mine[:, 1]).long())
            gt_xywh = torch.from_numpy(record.boxes_of(int(frame))[0]).float()
            gt.append(torch.cat([gt_xywh[:, :2], gt_xywh[:, :2] + gt_xywh[:, 2:]], dim=1))
        grid = render_tracks(images, boxes, ids, gt_boxes=gt)
        publish_grid(trainer, "val/tracks", grid, self.viz_dir)

"""Detection diagnostics of a validation pass: why HOTA is what it is.

Computed on the host from what the tracker already receives (each window's boxes and scores, see
``predictions.window_predictions``) and the batch's host-side ground truth; no forward and no device
copy of their own.

Per window, queries are matched one-to-one to the window's ground-truth tracks, one query per track
for the whole window as in training's track-level matching, but on IoU alone: Hungarian on the mean
IoU over the frames where the track is visible (a pair that never overlaps is no match). From that:

- matched-box IoU: the IoU of each ground-truth box with its matched query in that frame (mean, share
  >= 0.5, share >= 0.75). Low: the boxes are off (localisation), whatever the scores.
- best-query recall @0.5 / @0.75: the share of ground-truth boxes that *some* query covers at that IoU,
  score ignored. Low: no query is there; high with a low matched IoU: the right box exists but the
  matching (and the tracker) prefers another query.
- scores of matched (query, frame) pairs where the object is visible vs every other (query, frame),
  as histograms and their AUC (the chance that a matched pair outscores an unmatched one). AUC near
  0.5: the score does not tell objects from empty queries; high AUC but nothing above the threshold:
  the scores separate but are not calibrated to it.
- counts per frame: queries scoring at least the tracker's ``start_threshold`` vs ground-truth boxes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.stats import rankdata
from torch import Tensor
from torchvision.ops import box_iou

from scene_model.boxes import to_pixels
from scene_model.data.types import SceneBatch
from scene_model.tracking.predictions import WindowPrediction, pixel_scale

HISTOGRAM_BINS = np.linspace(0.0, 1.0, 21)  # score histograms: 20 bins of 0.05 on 0..1
# The numbers of ``DetectionDiagnostics.summary``, logged as val/diag/<name> (see the module docstring).
DIAGNOSTICS = (
    "boxes_written", "gt_boxes", "queries_above_start", "gt_per_frame", "max_score",
    "matched_iou", "matched_iou_50", "matched_iou_75", "recall_50", "recall_75",
    "score_auc", "matched_score", "unmatched_score",
)


@dataclass
class WindowTruth:
    """Ground truth of one window's non-padded frames: per frame, (x1, y1, x2, y2) pixels of the
    original images float[N, 4] and track ids long[N]."""

    boxes: list[Tensor]
    track_ids: list[Tensor]


def window_truth(batch: SceneBatch) -> list[WindowTruth]:
    """The host-side ground truth (``batch.targets``) of each sample, in the pixels the tracker writes,
    padded frames left out (the same frames as ``window_predictions``)."""
    scale, limits = pixel_scale(batch)
    truths = []
    for b, sample in enumerate(batch.targets):
        frames = [target for target in sample if target.frame_index >= 0]
        boxes = [to_pixels(target.boxes.float().cpu(), scale[b], limits[b]) for target in frames]
        truths.append(WindowTruth(boxes, [target.track_ids.cpu() for target in frames]))
    return truths


@dataclass
class WindowRecord:
    """What one window adds to the diagnostics."""

    matched_ious: np.ndarray
    best_ious: np.ndarray
    matched_scores: np.ndarray
    unmatched_scores: np.ndarray
    frames: int
    queries_above_start: int


@dataclass
class DetectionDiagnostics:
    """Accumulates the diagnostics over the windows of one validation pass (``add``), then
    ``summary``. ``merge`` joins the shares of several processes. A window is counted once per
    (sequence, first frame), as the tracker counts it: a distributed sampler repeats windows to even
    out the processes' shares."""

    start_threshold: float = 0.5
    windows: dict[tuple[str, int], WindowRecord] = field(default_factory=dict)

    def add(self, window: WindowPrediction, truth: WindowTruth) -> None:
        # Non-finite outputs (a diverged model) count as empty queries: score 0, no overlap.
        boxes = torch.nan_to_num(window.boxes.float())
        scores = torch.nan_to_num(window.scores.float(), nan=0.0, posinf=1.0, neginf=0.0)
        num_frames, num_queries = scores.shape
        ids = [i for i in truth.track_ids if len(i)]
        tracks = torch.unique(torch.cat(ids)) if ids else torch.zeros(0, dtype=torch.long)
        # iou[t, q, k]: query q against track k in frame t; visible[t, k]
        iou = torch.zeros(num_frames, num_queries, len(tracks))
        visible = torch.zeros(num_frames, len(tracks), dtype=torch.bool)
        for t, (gt, gt_ids) in enumerate(zip(truth.boxes, truth.track_ids, strict=True)):
            if len(gt_ids):
                k = torch.searchsorted(tracks, gt_ids)
                iou[t][:, k] = box_iou(boxes[t], gt.float())
                visible[t, k] = True
        iou = torch.nan_to_num(iou)
        matched = torch.zeros(num_frames, num_queries, dtype=torch.bool)
        best_ious = matched_ious = np.zeros(0, dtype=np.float32)
        if len(tracks):
            best_ious = iou.amax(dim=1)[visible].numpy()
            mean_iou = (iou * visible[:, None]).sum(0) / visible.sum(0).clamp(min=1)  # [Q, K]
            rows, cols = linear_sum_assignment(mean_iou.numpy(), maximize=True)
            overlap = mean_iou[rows, cols] > 0  # a pair that never overlaps is no match (Hungarian pairs everything)
            rows, cols = rows[overlap.numpy()], cols[overlap.numpy()]
            per_box = torch.zeros(num_frames, len(tracks))  # an object no query was matched to: IoU 0
            per_box[:, cols] = iou[:, rows, cols]
            matched_ious = per_box[visible].numpy()
            matched[:, rows] = visible[:, cols]
        self.windows[window.key] = WindowRecord(
            matched_ious, best_ious, scores[matched].numpy(), scores[~matched].numpy(),
            num_frames, int((scores >= self.start_threshold).sum()),
        )

    def add_batch(self, windows: Sequence[WindowPrediction], batch: SceneBatch) -> None:
        for window, truth in zip(windows, window_truth(batch), strict=True):
            self.add(window, truth)

    @staticmethod
    def merge(shares: Sequence[DetectionDiagnostics]) -> DetectionDiagnostics:
        merged = DetectionDiagnostics(shares[0].start_threshold)
        for share in shares:
            merged.windows.update(share.windows)
        return merged

    def _gather(self, name: str) -> np.ndarray:
        return _cat([getattr(record, name) for record in self.windows.values()])

    @property
    def frames(self) -> int:
        return sum(record.frames for record in self.windows.values())

    def scores(self) -> tuple[np.ndarray, np.ndarray]:
        """(matched, unmatched) scores, float32 arrays."""
        return self._gather("matched_scores"), self._gather("unmatched_scores")

    def summary(self, boxes_written: float | None = None, gt_boxes: float | None = None) -> dict[str, float]:
        """The diagnostics as numbers (shares as fractions 0..1; see ``DIAGNOSTICS``). ``boxes_written``:
        the tracker's output count, which windows alone do not give; ``gt_boxes``: the split's
        ground-truth count (None: the boxes of the windows, where frames shared by two windows count
        twice)."""
        matched_iou, best_iou = self._gather("matched_ious"), self._gather("best_ious")
        matched, unmatched = self.scores()
        everything = np.concatenate([matched, unmatched])
        frames = max(self.frames, 1)
        out = {
            "boxes_written": float(boxes_written) if boxes_written is not None else math.nan,
            "gt_boxes": float(gt_boxes) if gt_boxes is not None else float(len(best_iou)),
            "queries_above_start": sum(record.queries_above_start for record in self.windows.values()) / frames,
            "gt_per_frame": len(best_iou) / frames,
            "max_score": float(everything.max()) if len(everything) else 0.0,
            "matched_iou": _mean(matched_iou),
            "matched_iou_50": _mean(matched_iou >= 0.5),
            "matched_iou_75": _mean(matched_iou >= 0.75),
            "recall_50": _mean(best_iou >= 0.5),
            "recall_75": _mean(best_iou >= 0.75),
            "score_auc": score_auc(matched, unmatched),
            "matched_score": _mean(matched),
            "unmatched_score": _mean(unmatched),
        }
        return out

    def histograms(self) -> dict[str, list[int]]:
        """Counts of matched and unmatched scores in ``HISTOGRAM_BINS`` (for the metrics file)."""
        matched, unmatched = self.scores()
        return {
            "bins": HISTOGRAM_BINS.round(3).tolist(),
            "matched": np.histogram(matched, HISTOGRAM_BINS)[0].tolist(),
            "unmatched": np.histogram(unmatched, HISTOGRAM_BINS)[0].tolist(),
        }


def score_auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Area under the ROC curve of a score separating ``positives`` from ``negatives`` (Mann-Whitney U
    over the product of their counts; ties count half). NaN when either side is empty."""
    if not len(positives) or not len(negatives):
        return math.nan
    ranks = rankdata(np.concatenate([positives, negatives]))
    u = ranks[: len(positives)].sum() - len(positives) * (len(positives) + 1) / 2
    return float(u) / (len(positives) * len(negatives))


def format_diagnostics(values: dict[str, float], start_threshold: float) -> str:
    """Two console lines: the counts, then IoU, recall and scores."""
    written = values["boxes_written"]
    counts = (
        f"boxes written {written:.0f} of {values['gt_boxes']:.0f} ground truth | per frame: "
        f"{values['queries_above_start']:.1f} queries >= {start_threshold:.2f}, {values['gt_per_frame']:.1f} objects | "
        f"highest score {values['max_score']:.2f}"
    )
    quality = (
        f"matched IoU {values['matched_iou']:.3f} (>=0.5 {values['matched_iou_50']:.1%}, >=0.75 {values['matched_iou_75']:.1%}) | "
        f"best-query recall @0.5 {values['recall_50']:.1%}, @0.75 {values['recall_75']:.1%} | "
        f"score AUC {values['score_auc']:.3f} (matched {values['matched_score']:.2f}, unmatched {values['unmatched_score']:.2f})"
    )
    return f"{counts}\n{quality}"


def _cat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays).astype(np.float32) if arrays else np.zeros(0, dtype=np.float32)


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else math.nan

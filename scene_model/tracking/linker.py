"""Linking the windows of one sequence into tracks.

Within a window a query is one object, so a query is a track piece. Consecutive windows share
frames (stride < clip_len); on those frames the queries of the new window are matched to the
tracked queries of the previous one (Hungarian on the mean IoU times the new query's mean score over
its window, times a height term; a pair needs a mean IoU of ``link_iou``, pairs below it are out
before the match), and a matched query carries the track on. The height term,
``exp(-|log(h_query / h_track)| / height_scale)``, compares the query's median box height in the
window with the median height of the track's last ``HEIGHT_HISTORY`` written boxes: where two
dancers cross, their boxes overlap on the shared frame and IoU alone is close to a coin toss, but a
person's height changes little over a second (Hybrid-SORT's height-modulated IoU rests on the same
observation for DanceTrack).
Frames the previous window already wrote are not written again: each window writes the frames after
the previous window's last one (the first window writes all of its frames).

Before linking, duplicates inside a window are dropped (NMS over whole query tracks): a query whose
boxes overlap those of a query with a higher mean score by a mean IoU of ``nms_iou`` or more over the
window's frames is treated as empty (never written, never linked). One-to-one matching trains
duplicates away only slowly; two queries on one dancer otherwise become two tracks that HOTA's
matching alternates between.

Scores are existence probabilities (``predictions.prediction_scores``). A box is written for a frame when its score reaches
``keep_threshold``; a query that no track claims starts a new track from its first written frame
scoring ``start_threshold`` or more; a track ends when it has had no written box for more than
``max_lost`` frames (while it lasts, a matched query may be invisible, e.g. occluded).
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor
from torchvision.ops import box_convert, box_iou

from scene_model.models.scene_model import LINK_TEMPERATURE
from scene_model.tracking.mot_results import RESULT_COLUMNS
from scene_model.tracking.options import TrackerOptions

HEIGHT_HISTORY = 10  # a track's height is the median of its last this many written boxes


class TrackLinker:
    """Stateful over one sequence: feed its windows in order with ``step``; ids start at 1."""

    def __init__(self, options: TrackerOptions | None = None) -> None:
        options = options or TrackerOptions()
        self.start_threshold = options.start_threshold
        self.keep_threshold = options.keep_threshold
        self.link_iou = options.link_iou
        self.max_lost = options.max_lost
        self.nms_iou = options.nms_iou
        self.height_scale = options.height_scale
        self.heights: dict[int, deque[float]] = {}
        self.next_id = 1
        self.last_written = 0
        self.last_seen: dict[int, int] = {}
        self.prev_frames: np.ndarray | None = None
        self.prev_boxes: Tensor | None = None
        self.prev_tracks: Tensor | None = None  # long[Q]: track id of each query, -1 for none
        self.prev_embeddings: Tensor | None = None  # float[Q, e]: link embeddings on the previous window's last frame

    def step(
        self,
        frames: np.ndarray | Tensor,
        boxes: Tensor,
        scores: Tensor,
        carried: Tensor | None = None,
        embeddings: Tensor | None = None,
    ) -> np.ndarray:
        """One window: frames long[T] (1-based, increasing), boxes float[T, N, 4] (x1, y1, x2, y2)
        pixels, scores float[T, N]. Returns the rows it writes, float64[M, 7]
        (frame, id, left, top, width, height, score).

        ``carried`` long[N]: the track id each query carries from the window before (the model's track
        queries; -1 for a detect query): those keep their ids, come first in the window NMS, and no IoU
        link is made. Without it the queries are linked to the previous window's tracks on IoU, or, with
        the model's link ``embeddings`` float[2, N, e] (first and last frame), on their affinity."""
        frames = np.asarray(frames, dtype=np.int64)
        boxes, scores = boxes.float().cpu(), scores.float().cpu()
        num_frames, num_queries = scores.shape
        if carried is None:
            dropped = duplicates(boxes, scores, self.nms_iou)
            scores = torch.where(dropped[None, :], 0.0, scores)
            tracks = self._link(frames, boxes, scores, dropped, embeddings)
        else:
            carried = carried.cpu()
            dropped = duplicates(boxes, scores, self.nms_iou, first=carried >= 0)
            scores = torch.where(dropped[None, :], 0.0, scores)
            tracks = carried.clone()
        write = torch.from_numpy(frames > self.last_written)
        visible = (scores >= self.keep_threshold) & write[:, None]
        starts = (scores >= self.start_threshold) & write[:, None]
        new = (tracks < 0) & starts.any(0)
        first_start = torch.where(starts.any(0), starts.float().argmax(0), num_frames)
        tracks[new] = torch.arange(self.next_id, self.next_id + int(new.sum()))
        self.next_id += int(new.sum())
        before_start = torch.arange(num_frames)[:, None] < first_start[None, :]
        emit = visible & (tracks >= 0)[None, :] & ~(new[None, :] & before_start)
        t_idx, q_idx = emit.nonzero(as_tuple=True)
        xywh = box_convert(boxes[t_idx, q_idx], "xyxy", "xywh")
        rows = np.concatenate(
            [
                frames[t_idx.numpy()][:, None].astype(np.float64),
                tracks[q_idx].numpy()[:, None].astype(np.float64),
                xywh.numpy().astype(np.float64),
                scores[t_idx, q_idx].numpy()[:, None].astype(np.float64),
            ],
            axis=1,
        ).reshape(-1, len(RESULT_COLUMNS))
        for frame, track, height in zip(rows[:, 0].astype(int), rows[:, 1].astype(int), rows[:, 5], strict=True):
            self.last_seen[track] = max(self.last_seen.get(track, 0), frame)
            self.heights.setdefault(track, deque(maxlen=HEIGHT_HISTORY)).append(float(height))
        for q in (tracks >= 0).nonzero().flatten().tolist():
            if frames[-1] - self.last_seen.get(int(tracks[q]), frames[-1]) > self.max_lost:
                self.heights.pop(int(tracks[q]), None)
                tracks[q] = -1  # lost for too long: the track ends, the query is free
        self.prev_frames, self.prev_boxes, self.prev_tracks = frames, boxes, tracks
        self.prev_embeddings = embeddings[-1] if embeddings is not None else None
        self.last_written = max(self.last_written, int(frames.max(initial=0)))
        return rows

    def _link(
        self, frames: np.ndarray, boxes: Tensor, scores: Tensor, dropped: Tensor, embeddings: Tensor | None = None
    ) -> Tensor:
        """Track id per query of the new window: carried over from the previous window, or -1
        (always for the ``dropped`` duplicates)."""
        tracks = torch.full((scores.shape[1],), -1, dtype=torch.long)
        if self.prev_frames is None:
            return tracks
        shared_prev = np.isin(self.prev_frames, frames)
        shared_new = np.isin(frames, self.prev_frames)
        active = (self.prev_tracks >= 0).nonzero().flatten()
        if not shared_new.any() or len(active) == 0:
            return tracks
        prev = self.prev_boxes[torch.from_numpy(shared_prev)][:, active]  # [S, A, 4]
        new = boxes[torch.from_numpy(shared_new)]  # [S, Q, 4]
        iou = torch.stack([box_iou(p, n) for p, n in zip(prev, new, strict=True)]).mean(0)  # [A, Q]
        # Overlap times the new query's mean score over its window: of two queries on one object, the
        # one that is there carries the track, not a near-empty duplicate that happens to overlap more.
        # Pairs below the gate are out before the match: a neighbour that barely overlaps must not
        # outbid the track's own query (whose height may have changed) and then be refused.
        if embeddings is not None and self.prev_embeddings is not None:
            # What the model learned: on the shared frame, which new query is which tracked one (the
            # dual softmax of their embeddings' similarities, as trained), times the query's score.
            similarity = self.prev_embeddings[active] @ embeddings[0].T / LINK_TEMPERATURE  # [A, Q]
            similarity = similarity.masked_fill(dropped[None, :], float("-inf"))
            affinity = similarity.softmax(1) * similarity.softmax(0)
            objective = affinity * scores.mean(0)[None, :]  # NaN where every query is dropped: 0 below
        else:
            objective = iou * scores.mean(0)[None, :] * self._height_agreement(self.prev_tracks[active], boxes)
        objective = torch.nan_to_num(objective).masked_fill(iou < self.link_iou, 0.0).masked_fill(dropped[None, :], -1.0)
        rows, cols = linear_sum_assignment(objective.numpy(), maximize=True)
        rows, cols = torch.from_numpy(rows), torch.from_numpy(cols)
        ok = (iou[rows, cols] >= self.link_iou) & ~dropped[cols]
        tracks[cols[ok]] = self.prev_tracks[active[rows[ok]]]
        return tracks

    def _height_agreement(self, tracks: Tensor, boxes: Tensor) -> Tensor:
        """float[A, Q] in [0, 1]: exp(-|log(h_query / h_track)| / height_scale) for the tracks ``tracks``
        long[A] and the queries of ``boxes`` float[T, Q, 4]; 1 for a track that wrote no box yet (or
        height_scale 0)."""
        agreement = torch.ones(len(tracks), boxes.shape[1])
        if self.height_scale == 0:
            return agreement
        query_height = (boxes[..., 3] - boxes[..., 1]).median(0).values.clamp(min=1e-3)  # [Q]
        for row, track in enumerate(tracks.tolist()):
            history = self.heights.get(track)
            if history:
                ratio = (query_height / max(float(np.median(history)), 1e-3)).log().abs()
                agreement[row] = torch.exp(-ratio / self.height_scale)
        return agreement


def duplicates(boxes: Tensor, scores: Tensor, nms_iou: float, first: Tensor | None = None) -> Tensor:
    """bool[Q]: queries of one window (boxes float[T, Q, 4] x1y1x2y2, scores float[T, Q]) whose boxes
    overlap a kept query's with a mean IoU over the frames of at least ``nms_iou``, the queries taken
    by mean score, highest first (greedy NMS over whole query tracks; at 1 only exact copies); the
    queries ``first`` bool[Q] (track queries) before all others."""
    num_queries = scores.shape[1]
    dropped = torch.zeros(num_queries, dtype=torch.bool)
    if num_queries < 2:
        return dropped
    overlap = torch.stack([box_iou(frame, frame) for frame in boxes]).mean(0)  # [Q, Q]
    priority = scores.mean(0) + (2.0 * first.float() if first is not None else 0.0)
    kept: list[int] = []
    for q in priority.argsort(descending=True).tolist():
        if kept and bool((overlap[q, kept] >= nms_iou).any()):
            dropped[q] = True
        else:
            kept.append(q)
    return dropped

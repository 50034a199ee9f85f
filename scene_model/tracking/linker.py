"""Linking the windows of one sequence into tracks.

Within a window a query is one object, so a query is a track piece. ``TrackLinker`` takes a
sequence's windows in order and owns everything the sequence's tracking knows: its tracks (``tracks``:
when each was last written, its recent heights), the previous window and the track of each of its
queries, and the association's own ``memory``. Which track a query of the new window continues is
the association's decision (``scene_model.association``: IoU and height on the shared frame, learned
embeddings, carried track queries, an ID decoder); the rest is the linker's, the same for all:

Before linking, duplicates inside a window are dropped (NMS over whole query tracks): a query whose
boxes overlap those of a query with a higher mean score by a mean IoU of ``nms_iou`` or more over the
window's frames is treated as empty (never written, never linked). One-to-one matching trains
duplicates away only slowly; two queries on one dancer otherwise become two tracks that HOTA's
matching alternates between. Carried queries come first in that NMS.

Frames the previous window already wrote are not written again: each window writes the frames after
the previous window's last one (the first window writes all of its frames). Scores are existence
probabilities (``models.head.prediction_scores``). A box is written for a frame when its score
reaches ``keep_threshold``; a query that no track claims starts a new track from its first written
frame scoring ``start_threshold`` or more; a track ends when it has had no written box for more than
``max_lost`` frames (while it lasts, a query that continues it may be invisible, e.g. occluded).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchvision.ops import box_convert, box_iou

from scene_model.association.base import Association, WindowView
from scene_model.tracking.mot_results import RESULT_COLUMNS
from scene_model.tracking.options import TrackerOptions

HEIGHT_HISTORY = 10  # a track's height is the median of its last this many written boxes


@dataclass
class TrackState:
    """What the linker keeps of a running track."""

    last_seen: int  # the last frame it wrote a box in
    heights: deque[float] = field(default_factory=lambda: deque(maxlen=HEIGHT_HISTORY))  # of its last written boxes


class TrackLinker:
    """Stateful over one sequence: feed its windows in order with ``step``; ids start at 1."""

    def __init__(self, options: TrackerOptions, association: Association) -> None:
        self.options = options
        self.association = association
        self.tracks: dict[int, TrackState] = {}  # the running tracks
        self.previous: WindowView | None = None
        self.previous_tracks: Tensor | None = None  # long[N]: the track each query of the previous window continued, -1 none
        self.memory: Any = None  # the association's, for the next window
        self.next_id = 1
        self.last_written = 0

    def step(
        self,
        frames: np.ndarray | Tensor,
        boxes: Tensor,
        scores: Tensor,
        carried: Tensor | None = None,
        features: Tensor | None = None,
    ) -> np.ndarray:
        """One window: frames long[T] (1-based, increasing), boxes float[T, N, 4] (x1, y1, x2, y2)
        pixels, scores float[T, N]; ``carried`` long[N]: the track each carried query follows (-1: a
        detect query); ``features`` float[N, f]: the association's window features. Returns the rows it
        writes, float64[M, 7] (frame, id, left, top, width, height, score)."""
        options = self.options
        frames = np.asarray(frames, dtype=np.int64)
        boxes, scores = boxes.float().cpu(), scores.float().cpu()
        num_frames = scores.shape[0]
        carried = carried.cpu() if carried is not None else None
        dropped = duplicates(boxes, scores, options.nms_iou, first=carried >= 0 if carried is not None else None)
        scores = torch.where(dropped[None, :], 0.0, scores)
        window = WindowView(frames, boxes, scores, features.float().cpu() if features is not None else None, dropped, carried)
        tracks = self.association.link(self, window).clone()
        tracks[dropped] = -1
        write = torch.from_numpy(frames > self.last_written)
        visible = (scores >= options.keep_threshold) & write[:, None]
        starts = (scores >= options.start_threshold) & write[:, None]
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
            state = self.tracks.setdefault(track, TrackState(frame))
            state.last_seen = max(state.last_seen, frame)
            state.heights.append(float(height))
        for track in [t for t, state in self.tracks.items() if frames[-1] - state.last_seen > options.max_lost]:
            del self.tracks[track]  # lost for too long: the track ends
        tracks[(tracks >= 0) & ~torch.tensor([int(t) in self.tracks for t in tracks.tolist()], dtype=torch.bool)] = -1
        self.association.remember(self, window, tracks)
        self.previous, self.previous_tracks = window, tracks
        self.last_written = max(self.last_written, int(frames.max(initial=0)))
        return rows

    def height_agreement(self, tracks: Tensor, boxes: Tensor) -> Tensor:
        """float[A, N] in [0, 1]: exp(-|log(h_query / h_track)| / height_scale) for the tracks ``tracks``
        long[A] and the queries of ``boxes`` float[T, N, 4]; 1 for a track that wrote no box yet (or
        height_scale 0). h_query is the query's median box height over the window, h_track the median of
        the track's last ``HEIGHT_HISTORY`` written boxes: a dancer's height changes little over a second,
        while two dancers that cross differ (Hybrid-SORT's height-modulated IoU rests on the same
        observation for DanceTrack)."""
        height_scale = self.options.height_scale
        agreement = torch.ones(len(tracks), boxes.shape[1])
        if height_scale == 0:
            return agreement
        query_height = (boxes[..., 3] - boxes[..., 1]).median(0).values.clamp(min=1e-3)  # [N]
        for row, track in enumerate(tracks.tolist()):
            state = self.tracks.get(track)
            if state is not None and state.heights:
                ratio = (query_height / max(float(np.median(state.heights)), 1e-3)).log().abs()
                agreement[row] = torch.exp(-ratio / height_scale)
        return agreement


def duplicates(boxes: Tensor, scores: Tensor, nms_iou: float, first: Tensor | None = None) -> Tensor:
    """bool[Q]: queries of one window (boxes float[T, Q, 4] x1y1x2y2, scores float[T, Q]) whose boxes
    overlap a kept query's with a mean IoU over the frames of at least ``nms_iou``, the queries taken
    by mean score, highest first (greedy NMS over whole query tracks; at 1 only exact copies); the
    queries ``first`` bool[Q] (carried queries) before all others."""
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

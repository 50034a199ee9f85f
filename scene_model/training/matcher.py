"""Hungarian matching of queries to the ground truth of a window, track-level or frame-level.

Track-level (the default): query q is paired with ground-truth track k for the whole window; the cost
is summed over the frames where track k is present (and the frame is not padded): focal class cost,
L1 box distance and -GIoU, weighted. Frame-level: every frame is matched on its own, query to box.
The costs of all decoder layers of a step are built batched on the model's device and moved to the
host in one copy; scipy's linear_sum_assignment (or a greedy pass) runs per sample (per frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor
from torchvision.ops import box_convert, generalized_box_iou

from scene_model.boxes import output_boxes
from scene_model.data.types import TrackTargets
from scene_model.errors import ConfigError

_batched_giou = torch.vmap(generalized_box_iou)


@dataclass
class Matching:
    """Matched pairs: query ``query[i]`` of sample ``batch[i]`` <-> track ``track[i]``, for the whole
    window (``frame`` None) or in frame ``frame[i]`` only."""

    batch: Tensor  # long[M]
    query: Tensor  # long[M]
    track: Tensor  # long[M]
    frame: Tensor | None = None  # long[M], frame-level matching only

    def __len__(self) -> int:
        return int(self.batch.numel())

    def assignment(self, batch: int, frames: int, queries: int) -> Tensor:
        """long[B, T, Q]: the track each query is matched to in each frame, -1 for none."""
        assigned = torch.full((batch, frames, queries), -1, dtype=torch.long, device=self.batch.device)
        if self.frame is None:
            per_query = torch.full((batch, queries), -1, dtype=torch.long, device=self.batch.device)
            per_query[self.batch, self.query] = self.track
            return per_query[:, None, :].expand(batch, frames, queries)
        assigned[self.batch, self.frame, self.query] = self.track
        return assigned


def greedy_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Repeatedly take the cheapest remaining (row, column) pair; cheaper than Hungarian, not optimal."""
    rows, cols = [], []
    cost = cost.astype(np.float64, copy=True)
    for _ in range(min(cost.shape)):
        r, c = np.unravel_index(np.argmin(cost), cost.shape)
        rows.append(r)
        cols.append(c)
        cost[r, :] = np.inf
        cost[:, c] = np.inf
    order = np.argsort(rows)
    return np.asarray(rows, dtype=np.int64)[order], np.asarray(cols, dtype=np.int64)[order]


SOLVERS = {"hungarian": linear_sum_assignment, "greedy": greedy_assignment}
LEVELS = ("track", "frame")


class HungarianMatcher:
    def __init__(
        self,
        cost_class: float,
        cost_bbox: float,
        cost_giou: float,
        focal_alpha: float,
        focal_gamma: float,
        solver: str,
        level: str,
    ) -> None:
        if solver not in SOLVERS:
            raise ConfigError(f"head.matcher.solver={solver!r}; expected one of {', '.join(SOLVERS)}")
        if level not in LEVELS:
            raise ConfigError(f"head.matcher.level={level!r}; expected one of {', '.join(LEVELS)}")
        self.cost_class, self.cost_bbox, self.cost_giou = cost_class, cost_bbox, cost_giou
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.solve = SOLVERS[solver]
        self.level = level

    @torch.no_grad()
    def frame_costs(self, outputs: dict, tracks: TrackTargets) -> Tensor:
        """Cost of query q for track k in frame t, float[B, T, Q, K] (meaningless where k is absent)."""
        pred = output_boxes(outputs).float()  # [B,T,Q,4]
        batch, frames, queries, _ = pred.shape
        gt = tracks.boxes.to(pred)  # [B,T,K,4]
        num_tracks = gt.shape[2]
        prob = outputs["cls_logits"].float().sigmoid()  # [B,T,Q,C]
        neg = (1 - self.focal_alpha) * prob**self.focal_gamma * -(1 - prob + 1e-8).log()
        pos = self.focal_alpha * (1 - prob) ** self.focal_gamma * -(prob + 1e-8).log()
        labels = tracks.labels[:, None, None, :].expand(batch, frames, queries, num_tracks)
        class_cost = torch.gather(pos - neg, 3, labels)  # [B,T,Q,K]
        l1 = torch.cdist(pred.flatten(0, 1), gt.flatten(0, 1), p=1).view(batch, frames, queries, num_tracks)
        giou = _batched_giou(
            box_convert(pred.flatten(0, 1), "cxcywh", "xyxy"), box_convert(gt.flatten(0, 1), "cxcywh", "xyxy")
        ).view(batch, frames, queries, num_tracks)
        return self.cost_class * class_cost + self.cost_bbox * l1 - self.cost_giou * giou

    @torch.no_grad()
    def track_costs(self, outputs: dict, tracks: TrackTargets, counted: Tensor) -> Tensor:
        """Track-level cost float[B, Q, K]: per-frame costs summed over the frames ``counted`` bool[B, T, K]
        (where the track is present and the frame is not padded)."""
        return torch.where(counted[:, :, None, :], self.frame_costs(outputs, tracks), 0.0).sum(dim=1)

    def match(
        self,
        layers: Sequence[dict],
        tracks: TrackTargets,
        padding_mask: Tensor,
        levels: Sequence[str] | None = None,
    ) -> list[Matching]:
        """One Matching per entry of ``layers`` (decoder layers' outputs), with one device-to-host copy.

        ``levels``: the matching level of each layer (default: ``self.level`` for all), so that frame-level
        layers (e.g. the encoder's proposals) share the step's one copy with the track-level ones."""
        levels = list(levels) if levels is not None else [self.level] * len(layers)
        device = layers[0]["bbox_center"].device
        tracks = tracks.to(device)
        padding_mask = padding_mask.to(device)
        present = tracks.present & ~padding_mask[:, :, None]  # [B,T,K]
        costs = [
            self.track_costs(layer, tracks, present) if level == "track" else self.frame_costs(layer, tracks)
            for layer, level in zip(layers, levels, strict=True)
        ]
        # The step's one sync: every layer's costs and the presence table in a single copy.
        tables = [c.flatten() for c in costs] + [present.flatten().to(costs[0].dtype)]
        host = torch.cat(tables).cpu().numpy()
        ends = np.cumsum([t.numel() for t in tables])
        starts = ends - np.array([t.numel() for t in tables])
        counted = host[starts[-1] : ends[-1]].reshape(present.shape) > 0
        pairs = [
            self._solve(host[starts[i] : ends[i]].reshape(costs[i].shape), counted, levels[i])
            for i in range(len(costs))
        ]
        return self._to_device(pairs, device, levels)

    def _solve(self, cost: np.ndarray, counted: np.ndarray, level: str) -> np.ndarray:
        """int64[4, M] rows (batch, query, track, frame) of the assignment; frame -1 at track level."""
        found = []
        if level == "track":
            for b, present in enumerate(counted.any(axis=1)):
                columns = np.flatnonzero(present)
                if len(columns):
                    rows, cols = self.solve(cost[b][:, columns])
                    found.append(np.stack([np.full(len(rows), b), rows, columns[cols], np.full(len(rows), -1)]))
        else:
            for b, t in zip(*np.nonzero(counted.any(axis=2)), strict=True):
                columns = np.flatnonzero(counted[b, t])
                rows, cols = self.solve(cost[b, t][:, columns])
                found.append(np.stack([np.full(len(rows), b), rows, columns[cols], np.full(len(rows), t)]))
        return np.concatenate(found, axis=1).astype(np.int64) if found else np.zeros((4, 0), dtype=np.int64)

    def _to_device(self, pairs: list[np.ndarray], device: torch.device, levels: Sequence[str]) -> list[Matching]:
        """All layers' pairs go to the device in one copy, then split into views."""
        sizes = [p.shape[1] for p in pairs]
        joined = torch.from_numpy(np.concatenate(pairs, axis=1)).to(device)
        matchings = []
        for part, level in zip(joined.split(sizes, dim=1), levels, strict=True):
            batch, query, track, frame = part.unbind(0)
            matchings.append(Matching(batch, query, track, frame if level == "frame" else None))
        return matchings

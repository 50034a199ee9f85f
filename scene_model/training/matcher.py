"""Track-level Hungarian matching of queries to the ground-truth tracks of a window.

The cost of pairing query q with track k is summed over the frames where track k is present (and
the frame is not padded): focal class cost, L1 box distance and -GIoU, weighted. The whole batch's
cost tensor is built on the model's device, moved to the host once, and scipy's
linear_sum_assignment runs per sample on its slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor
from torchvision.ops import box_convert, generalized_box_iou

from scene_model.data.types import TrackTargets

_batched_giou = torch.vmap(generalized_box_iou)


@dataclass
class Matching:
    """Matched pairs over the batch: query ``query[i]`` of sample ``batch[i]`` <-> track ``track[i]``."""

    batch: Tensor  # long[M]
    query: Tensor  # long[M]
    track: Tensor  # long[M]

    def __len__(self) -> int:
        return int(self.batch.numel())


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


class HungarianMatcher:
    def __init__(
        self,
        cost_class: float = 2.0,
        cost_bbox: float = 5.0,
        cost_giou: float = 2.0,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        solver: str = "hungarian",
    ) -> None:
        if solver not in SOLVERS:
            raise ValueError(f"head.matcher.solver={solver!r}; expected one of {', '.join(SOLVERS)}")
        self.cost_class, self.cost_bbox, self.cost_giou = cost_class, cost_bbox, cost_giou
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.solve = SOLVERS[solver]

    @torch.no_grad()
    def cost_matrix(self, outputs: dict, tracks: TrackTargets, padding_mask: Tensor) -> Tensor:
        """Track-level cost float[B, Q, K]: per-frame costs summed over frames where the track is present."""
        pred = torch.cat([outputs["bbox_center"], outputs["bbox_size"]], dim=-1).float()  # [B,T,Q,4]
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
        per_frame = self.cost_class * class_cost + self.cost_bbox * l1 - self.cost_giou * giou
        counted = (tracks.present & ~padding_mask[:, :, None])[:, :, None, :]  # [B,T,1,K]
        return torch.where(counted, per_frame, 0.0).sum(dim=1)

    def __call__(self, outputs: dict, tracks: TrackTargets, padding_mask: Tensor) -> Matching:
        device = outputs["bbox_center"].device
        cost = self.cost_matrix(outputs, tracks, padding_mask)
        # One device-to-host copy for the costs and the track counts together: the step's one sync.
        host = torch.cat([cost.flatten(), tracks.valid.sum(dim=1).to(cost)]).cpu().numpy()
        host_cost = host[: cost.numel()].reshape(cost.shape)
        host_counts = host[cost.numel() :].astype(np.int64)
        batch_idx, query_idx, track_idx = [], [], []
        for b, count in enumerate(host_counts):
            if count == 0:
                continue
            rows, cols = self.solve(host_cost[b, :, :count])
            batch_idx.append(np.full(len(rows), b))
            query_idx.append(rows)
            track_idx.append(cols)
        if not batch_idx:
            empty = torch.zeros(0, dtype=torch.long, device=device)
            return Matching(empty, empty, empty)
        as_tensor = lambda parts: torch.from_numpy(np.concatenate(parts).astype(np.int64)).to(device)  # noqa: E731
        return Matching(as_tensor(batch_idx), as_tensor(query_idx), as_tensor(track_idx))

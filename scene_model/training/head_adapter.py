"""HeadAdapter: matches queries to tracks and computes the weighted loss terms.

Terms (one small method each): sigmoid focal classification (``cls``), existence BCE on logits
(``exist``), L1 (``bbox``) and GIoU (``giou``) on the matched boxes. Every term is summed over
non-padded frames and divided by the number of ground-truth boxes of the batch (averaged over DDP
ranks); the auxiliary decoder layers add the same terms.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import box_convert, generalized_box_iou_loss, sigmoid_focal_loss

from scene_model.data.types import TargetFrame, TrackTargets
from scene_model.training.matcher import HungarianMatcher, Matching

LOSS_TERMS = ("cls", "bbox", "giou", "exist")


class HeadAdapter:
    def __init__(
        self,
        matcher: HungarianMatcher,
        weights: dict[str, float] | None = None,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        aux_loss: bool = True,
    ) -> None:
        self.matcher = matcher
        self.weights = {"cls": 2.0, "bbox": 5.0, "giou": 2.0, "exist": 1.0, **(weights or {})}
        unknown = set(self.weights) - set(LOSS_TERMS)
        if unknown:
            raise ValueError(f"unknown loss weight(s) {sorted(unknown)}; expected {LOSS_TERMS}")
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.aux_loss = aux_loss

    def compute_loss(
        self,
        outputs: dict,
        targets: TrackTargets | Sequence[Sequence[TargetFrame]],
        padding_mask: Tensor,
        dn_state: object | None = None,
    ) -> dict[str, Tensor]:
        """Returns {total, cls, bbox, giou, exist, num_matches, num_targets} (scalars)."""
        device = outputs["bbox_center"].device
        tracks = targets if isinstance(targets, TrackTargets) else TrackTargets.from_frames(targets, padding_mask.shape[1])
        tracks = tracks.to(device, non_blocking=True)
        valid_frames = ~padding_mask.to(device)
        num_targets = (tracks.present & valid_frames[:, :, None]).sum().float()
        normaliser = _mean_over_ranks(num_targets).clamp(min=1.0)
        layers = [outputs] + (list(outputs.get("aux", [])) if self.aux_loss else [])
        terms = {name: torch.zeros((), device=device) for name in LOSS_TERMS}
        num_matches = torch.zeros((), device=device)
        for i, layer in enumerate(layers):
            matching = self.matcher(layer, tracks, padding_mask)
            for name, value in self.layer_terms(layer, tracks, valid_frames, matching, normaliser).items():
                terms[name] = terms[name] + value
            if i == 0:
                num_matches = torch.tensor(float(len(matching)), device=device)
        total = sum(self.weights[name] * terms[name] for name in LOSS_TERMS)
        return {"total": total, **terms, "num_matches": num_matches, "num_targets": num_targets}

    def layer_terms(
        self, outputs: dict, tracks: TrackTargets, valid_frames: Tensor, matching: Matching, normaliser: Tensor
    ) -> dict[str, Tensor]:
        batch, frames, queries, _ = outputs["bbox_center"].shape
        assigned = torch.full((batch, queries), -1, dtype=torch.long, device=valid_frames.device)
        assigned[matching.batch, matching.query] = matching.track
        # present[b, t, q]: the query's matched track has a box in frame t (and the frame is real).
        gathered = torch.gather(tracks.present, 2, assigned.clamp(min=0)[:, None, :].expand(batch, frames, queries))
        present = gathered & (assigned >= 0)[:, None, :] & valid_frames[:, :, None]
        return {
            "cls": self.loss_cls(outputs, tracks, assigned, present, valid_frames, normaliser),
            "exist": self.loss_exist(outputs, present, valid_frames, normaliser),
            **self.loss_boxes(outputs, tracks, assigned, present, normaliser),
        }

    def loss_cls(self, outputs, tracks, assigned, present, valid_frames, normaliser) -> Tensor:
        logits = outputs["cls_logits"]
        labels = torch.gather(tracks.labels, 1, assigned.clamp(min=0))  # [B,Q]
        target = F.one_hot(labels, logits.shape[-1])[:, None].to(logits.dtype) * present[..., None]
        loss = sigmoid_focal_loss(logits, target, alpha=self.focal_alpha, gamma=self.focal_gamma, reduction="none")
        return torch.where(valid_frames[:, :, None, None], loss, 0.0).sum() / normaliser

    def loss_exist(self, outputs, present, valid_frames, normaliser) -> Tensor:
        logit = outputs["exist_logit"].squeeze(-1)
        loss = F.binary_cross_entropy_with_logits(logit, present.to(logit.dtype), reduction="none")
        return torch.where(valid_frames[:, :, None], loss, 0.0).sum() / normaliser

    def loss_boxes(self, outputs, tracks, assigned, present, normaliser) -> dict[str, Tensor]:
        pred = torch.cat([outputs["bbox_center"], outputs["bbox_size"]], dim=-1)  # [B,T,Q,4]
        batch, frames, queries, _ = pred.shape
        index = assigned.clamp(min=0)[:, None, :, None].expand(batch, frames, queries, 4)
        gt = torch.gather(tracks.boxes.to(pred.dtype), 2, index)  # [B,T,Q,4] the matched track's boxes
        gt = torch.where(present[..., None], gt, pred.detach())  # absent entries: a harmless stand-in
        # torch.where masks instead of boolean indexing, which would cost a host sync.
        l1 = torch.where(present, F.l1_loss(pred, gt, reduction="none").sum(-1), 0.0).sum()
        giou = generalized_box_iou_loss(
            box_convert(pred, "cxcywh", "xyxy"), box_convert(gt, "cxcywh", "xyxy"), reduction="none"
        )
        return {"bbox": l1 / normaliser, "giou": torch.where(present, giou, 0.0).sum() / normaliser}


def _mean_over_ranks(value: Tensor) -> Tensor:
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
        value = value / dist.get_world_size()
    return value

"""HeadAdapter: matches queries to tracks and computes the weighted loss terms.

Terms (one small method each): sigmoid focal classification (``cls``), existence BCE on logits
(``exist``), L1 (``bbox``) and GIoU (``giou``) on the matched boxes. Every term is summed over
non-padded frames and divided by the number of ground-truth boxes of the batch (averaged over DDP
ranks). The earlier decoder layers add the same terms (their weighted sum is reported as ``aux``), and
the encoder's proposals, matched frame by frame, add cls, bbox and giou (reported as ``enc``); the
final layer's terms are reported under their own names. With denoising queries (``dn_state``) the
same terms are computed for them against the tracks they were made from (normalised by the boxes
times the number of groups), reported as ``dn_cls`` ... and added to ``total``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import box_convert, sigmoid_focal_loss

from scene_model.association.base import CarriedTargets
from scene_model.boxes import output_boxes
from scene_model.data.types import TrackTargets
from scene_model.distributed import mean_over_ranks
from scene_model.errors import ConfigError
from scene_model.training.denoiser import DenoisingState, DinoDenoiser
from scene_model.training.matcher import HungarianMatcher

LOSS_TERMS = ("cls", "bbox", "giou", "exist")
MATCHED_KEYS = ("bbox_center", "bbox_size", "cls_logits")  # what the matcher reads of a layer's outputs
DN_TERMS = tuple(f"dn_{name}" for name in LOSS_TERMS)
# Weighted sums logged next to the final layer's terms: the earlier decoder layers and the proposals.
GROUP_TERMS = ("aux", "enc")


class HeadAdapter:
    def __init__(
        self,
        matcher: HungarianMatcher,
        weights: dict[str, float],
        focal_alpha: float,
        focal_gamma: float,
        aux_loss: bool,
        denoise: DinoDenoiser | None,
    ) -> None:
        self.matcher = matcher
        self.weights = dict(weights)
        if set(self.weights) != set(LOSS_TERMS):
            raise ConfigError(f"head.weights: expected one weight for each of {', '.join(LOSS_TERMS)}, got {', '.join(sorted(self.weights))}")
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.aux_loss = aux_loss
        self.denoiser = denoise

    @property
    def denoising(self) -> bool:
        return self.denoiser is not None and self.denoiser.enabled

    def make_denoising(self, tracks: TrackTargets, num_queries: int) -> DenoisingState | None:
        """Denoising queries for a training step (None when ``head.denoise.enabled`` is false)."""
        return self.denoiser.make_noise(tracks, num_queries) if self.denoising else None

    def losses_and_assignment(
        self,
        outputs: dict,
        targets: TrackTargets,
        padding_mask: Tensor,
        dn_state: DenoisingState | None = None,
        carried: CarriedTargets | None = None,
    ) -> tuple[dict[str, Tensor], Tensor]:
        """The loss terms, {total, cls, bbox, giou, exist, num_matches, num_targets} (scalars; with
        ``dn_state`` and ``outputs["dn"]`` also dn_cls, dn_bbox, dn_giou, dn_exist), and ``assigned``
        long[B, N]: the track each matching query of the final layer was given (-1: none), what an
        association's chain reads.

        With ``carried`` (K carried queries after the Q detect queries, ``association.CarriedTargets``),
        each carried query keeps the track it follows (present or not in this window: where it is not,
        it must say so); the detect queries are matched to every track, as in a window without carried
        queries (the tracker drops a detect query that repeats a carried one). Matching and losses run in
        float32 with autocast off, whatever the training precision."""
        device = outputs["bbox_center"].device
        with torch.autocast(device.type, enabled=False):
            return self._compute_loss(_float32(outputs), targets, padding_mask, dn_state, carried)

    def _compute_loss(self, outputs, targets, padding_mask, dn_state, carried) -> tuple[dict[str, Tensor], Tensor]:
        device = outputs["bbox_center"].device
        tracks = _at_least_one_track(targets.to(device, non_blocking=True))
        padding_mask = padding_mask.to(device)
        valid_frames = ~padding_mask
        num_targets = (tracks.present & valid_frames[:, :, None]).sum().float()
        normaliser = mean_over_ranks(num_targets).clamp(min=1.0)
        batch, frames = padding_mask.shape
        detect = outputs["cls_logits"].shape[2] - (carried.track.shape[1] if carried is not None else 0)
        layers = self._layers(outputs)
        matched = [{k: layer[k][:, :, :detect] for k in MATCHED_KEYS} for layer in layers]
        levels = [self.matcher.level] * len(layers)
        proposals = outputs.get("enc")
        if proposals is not None:  # the encoder's proposals, matched frame by frame as a dense detector
            matched, levels = matched + [proposals], levels + ["frame"]
        matchings = self.matcher.match(matched, tracks, padding_mask, levels)
        query_valid = fixed = None
        if carried is not None:
            fixed = carried.track[:, None, :].expand(batch, frames, -1)
            query_valid = torch.cat([torch.ones(batch, detect, dtype=torch.bool, device=device), carried.valid], dim=1)
        per_layer, assignments = [], []
        for layer, m in zip(layers, matchings, strict=False):
            assigned = m.assignment(batch, frames, detect)
            if fixed is not None:
                assigned = torch.cat([assigned, fixed], dim=2)
            assignments.append(assigned[:, 0])
            per_layer.append(self.layer_terms(layer, tracks, valid_frames, assigned, normaliser, query_valid))
        if proposals is not None:
            assigned = matchings[-1].assignment(batch, frames, proposals["cls_logits"].shape[2])
            per_layer.append(self.layer_terms(proposals, tracks, valid_frames, assigned, normaliser))
        final = per_layer[0]
        losses = {name: final[name] for name in LOSS_TERMS}
        total = self.weighted(final)
        if proposals is not None:
            losses["enc"] = self.weighted(per_layer.pop())
        if len(per_layer) > 1:
            losses["aux"] = sum(self.weighted(terms) for terms in per_layer[1:])
        total = total + sum(losses[name] for name in GROUP_TERMS if name in losses)
        num_matches = torch.full((), float(len(matchings[0])), device=device)
        if carried is not None:
            num_matches = num_matches + (carried.track >= 0).sum()
        losses.update(num_matches=num_matches, num_targets=num_targets)
        if dn_state is not None:
            if "dn" not in outputs:
                raise ValueError("dn_state given but the outputs have no 'dn' entry: pass the denoising queries to the model")
            dn_layers = self._layers(outputs["dn"])
            assigned = dn_state.assignment(frames)
            dn_terms = [
                self.layer_terms(layer, tracks, valid_frames, assigned, normaliser * dn_state.num_groups, dn_state.valid)
                for layer in dn_layers
            ]
            losses.update({f"dn_{name}": sum(t[name] for t in dn_terms) for name in LOSS_TERMS})
            total = total + sum(self.weighted(t) for t in dn_terms)
        return {"total": total, **losses}, assignments[0]

    def weighted(self, terms: dict[str, Tensor]) -> Tensor:
        """The weighted sum of one layer's terms."""
        return sum(self.weights[name] * terms[name] for name in LOSS_TERMS if name in terms)

    def _layers(self, outputs: dict) -> list[dict]:
        return [outputs] + (list(outputs.get("aux", [])) if self.aux_loss else [])

    def layer_terms(
        self,
        outputs: dict,
        tracks: TrackTargets,
        valid_frames: Tensor,
        assigned: Tensor,
        normaliser: Tensor,
        query_valid: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """The terms of one decoder layer (or of the proposals: no ``exist``). assigned long[B,T,N]: the track each query must predict in
        each frame (-1: none); query_valid bool[B,N]: queries that count at all (None: every one)."""
        # present[b, t, q]: the query's assigned track has a box in frame t (and the frame is real).
        present = torch.gather(tracks.present, 2, assigned.clamp(min=0)) & (assigned >= 0) & valid_frames[:, :, None]
        counted = valid_frames[:, :, None] if query_valid is None else valid_frames[:, :, None] & query_valid[:, None, :]
        terms = {
            "cls": self.loss_cls(outputs, tracks, assigned, present, counted, normaliser),
            **self.loss_boxes(outputs, tracks, assigned, present, normaliser),
        }
        if "exist_logit" in outputs:  # the encoder's proposals have no existence head
            terms["exist"] = self.loss_exist(outputs, present, counted, normaliser)
        return terms

    def loss_cls(self, outputs, tracks, assigned, present, counted, normaliser) -> Tensor:
        logits = outputs["cls_logits"]
        batch, frames, queries = assigned.shape
        labels = torch.gather(tracks.labels, 1, assigned.clamp(min=0).flatten(1)).view(batch, frames, queries)
        target = F.one_hot(labels, logits.shape[-1]).to(logits.dtype) * present[..., None]
        loss = sigmoid_focal_loss(logits, target, alpha=self.focal_alpha, gamma=self.focal_gamma, reduction="none")
        return torch.where(counted[..., None], loss, 0.0).sum() / normaliser

    def loss_exist(self, outputs, present, counted, normaliser) -> Tensor:
        logit = outputs["exist_logit"].squeeze(-1)
        loss = F.binary_cross_entropy_with_logits(logit, present.to(logit.dtype), reduction="none")
        return torch.where(counted, loss, 0.0).sum() / normaliser

    def loss_boxes(self, outputs, tracks, assigned, present, normaliser) -> dict[str, Tensor]:
        pred = output_boxes(outputs)  # [B,T,N,4]
        index = assigned.clamp(min=0)[..., None].expand(*assigned.shape, 4)
        gt = torch.gather(tracks.boxes.to(pred.dtype), 2, index)  # [B,T,N,4] the assigned track's boxes
        gt = torch.where(present[..., None], gt, pred.detach())  # absent entries: a harmless stand-in
        # torch.where masks instead of boolean indexing, which would cost a host sync.
        l1 = torch.where(present, F.l1_loss(pred, gt, reduction="none").sum(-1), 0.0).sum()
        giou = giou_loss(box_convert(pred, "cxcywh", "xyxy"), box_convert(gt, "cxcywh", "xyxy"))
        return {"bbox": l1 / normaliser, "giou": torch.where(present, giou, 0.0).sum() / normaliser}


def giou_loss(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """1 - GIoU of paired (x1, y1, x2, y2) boxes [..., 4] -> [...], torchvision's
    ``generalized_box_iou_loss(reduction="none")`` without its boolean-mask indexing (a host sync each):
    the intersection's sides are clamped at zero instead (same values, same gradients)."""
    x1, y1, x2, y2 = boxes1.unbind(-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(-1)
    inter = (torch.min(x2, x2g) - torch.max(x1, x1g)).clamp(min=0) * (torch.min(y2, y2g) - torch.max(y1, y1g)).clamp(min=0)
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    iou = inter / (union + eps)
    enclosing = (torch.max(x2, x2g) - torch.min(x1, x1g)) * (torch.max(y2, y2g) - torch.min(y1, y1g))
    return 1 - (iou - (enclosing - union) / (enclosing + eps))


def _float32(outputs: dict) -> dict:
    """The model outputs (and their ``aux`` and ``dn`` entries) with every floating tensor in float32."""
    converted: dict = {}
    for key, value in outputs.items():
        if isinstance(value, Tensor) and value.is_floating_point():
            converted[key] = value.float()
        elif isinstance(value, dict):
            converted[key] = _float32(value)
        elif isinstance(value, list | tuple):
            converted[key] = [_float32(v) if isinstance(v, dict) else v for v in value]
        else:
            converted[key] = value
    return converted


def _at_least_one_track(tracks: TrackTargets) -> TrackTargets:
    """A batch without any track gets one empty (invalid) track, so that gathers have a column."""
    if tracks.num_tracks > 0:
        return tracks
    batch, frames = tracks.present.shape[:2]
    device = tracks.boxes.device
    return TrackTargets(
        boxes=tracks.boxes.new_zeros(batch, frames, 1, 4),
        present=torch.zeros(batch, frames, 1, dtype=torch.bool, device=device),
        labels=torch.zeros(batch, 1, dtype=torch.long, device=device),
        track_ids=torch.full((batch, 1), -1, dtype=torch.long, device=device),
        valid=torch.zeros(batch, 1, dtype=torch.bool, device=device),
    )

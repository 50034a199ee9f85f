"""DinoDenoiser: DINO-style contrastive denoising queries for track queries.

For each of ``num_groups`` groups and each ground-truth track of a window, two noised copies of the
track's boxes (one per frame) become extra decoder queries: a positive (corner noise up to
``box_noise_scale`` / 2 of the box size, to be reconstructed) and a negative (noise between that and
``box_noise_scale``, to be rejected as "no object"). Labels are flipped with probability
``label_noise_ratio``; with probability ``id_noise_ratio`` a positive query is given another track's
boxes from a random frame on while its target stays its own track, which teaches the decoder to
repair identity switches. In frames where a track is absent its query starts from the nearest frame's
box and must predict "not visible".

The attention mask keeps the matching queries from seeing any denoising query (they would learn
from the answers) and the groups from seeing each other; denoising queries see the matching ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import box_convert

from scene_model.data.types import TrackTargets
from scene_model.models.scene_model import DenoisingQueries


@dataclass
class DenoisingState:
    """Denoising queries of a batch and what they must predict: D = num_groups * 2 * K per sample."""

    queries: DenoisingQueries  # what the model decodes (boxes, labels, attention mask, padding)
    positive: Tensor  # bool[B, D] True for a positive (reconstruct), False for a negative (reject)
    track: Tensor  # long[B, D] the track k whose boxes the query must reconstruct
    valid: Tensor  # bool[B, D] the source track is real (not batch padding)
    num_groups: int

    def assignment(self, frames: int) -> Tensor:
        """long[B, T, D]: the track a query reconstructs (positives), -1 for one to reject."""
        per_query = torch.where(self.positive & self.valid, self.track, -1)
        return per_query[:, None, :].expand(-1, frames, -1)


def denoising_attention_mask(num_queries: int, num_groups: int, group_size: int, device=None) -> Tensor:
    """bool[Q + G*S, Q + G*S], True = may not attend: matching queries (the first Q) see no denoising
    query; a denoising group sees itself and the matching queries."""
    total = num_queries + num_groups * group_size
    mask = torch.zeros(total, total, dtype=torch.bool, device=device)
    mask[:num_queries, num_queries:] = True
    group = torch.arange(num_groups * group_size, device=device) // group_size
    mask[num_queries:, num_queries:] = group[:, None] != group[None, :]
    return mask


def hold_nearest_box(boxes: Tensor, present: Tensor) -> Tensor:
    """Fill frames where a track is absent with its box of the last earlier frame where it is present
    (or, before its first appearance, of that first frame). boxes [B,T,K,4], present bool[B,T,K]."""
    frames = boxes.shape[1]
    t = torch.arange(frames, device=boxes.device)[None, :, None]
    last_seen = torch.where(present, t, -1).cummax(dim=1).values
    next_seen = torch.where(present, t, frames).flip(1).cummin(dim=1).values.flip(1)
    source = torch.where(last_seen >= 0, last_seen, next_seen).clamp(max=frames - 1)
    return torch.gather(boxes, 1, source[..., None].expand_as(boxes))


@dataclass
class DinoDenoiser:
    """DINO's denoising queries: ``num_groups`` noised copies of every track (a positive and a negative
    each; ``enabled`` false: none), see the module's docstring for the noise."""

    enabled: bool
    num_groups: int
    box_noise_scale: float
    label_noise_ratio: float
    id_noise_ratio: float
    num_classes: int

    def make_noise(
        self, tracks: TrackTargets, num_queries: int, generator: torch.Generator | None = None
    ) -> DenoisingState | None:
        """Noised copies of ``tracks`` to decode next to ``num_queries`` matching queries; None when
        there is no track in the batch. Runs on the tracks' device without host syncs."""
        batch, frames, num_tracks, _ = tracks.boxes.shape
        if num_tracks == 0:
            return None
        device = tracks.boxes.device
        copies = self.num_groups * 2
        # Queries are laid out group by group: [pos k=0..K-1, neg k=0..K-1] per group.
        positive = torch.zeros(copies, num_tracks, dtype=torch.bool, device=device)
        positive[0::2] = True
        positive = positive.flatten()[None].expand(batch, -1).contiguous()
        track = torch.arange(num_tracks, device=device).repeat(copies)[None].expand(batch, -1).contiguous()
        source = self._id_noise(track, positive, tracks.valid, frames, generator)  # [B,T,D]
        held = hold_nearest_box(tracks.boxes, tracks.present)
        boxes = torch.gather(held, 2, source[..., None].expand(batch, frames, -1, 4))
        labels = torch.gather(tracks.labels, 1, track)
        valid = torch.gather(tracks.valid, 1, track)
        queries = DenoisingQueries(
            boxes=self._box_noise(boxes, positive, generator),
            labels=self._label_noise(labels, generator),
            attn_mask=denoising_attention_mask(num_queries, self.num_groups, 2 * num_tracks, device),
            padding=~valid,
        )
        return DenoisingState(queries, positive, track, valid, self.num_groups)

    def _box_noise(self, boxes: Tensor, positive: Tensor, generator) -> Tensor:
        """Jitter each corner by up to half the box size times the scale; negatives farther than positives."""
        xyxy = box_convert(boxes, "cxcywh", "xyxy")
        half = boxes[..., 2:].repeat(1, 1, 1, 2) / 2
        sign = torch.randint(0, 2, boxes.shape, device=boxes.device, generator=generator) * 2.0 - 1.0
        magnitude = torch.rand(boxes.shape, device=boxes.device, generator=generator)
        magnitude = torch.where(positive[:, None, :, None], magnitude * 0.5, 0.5 + magnitude * 0.5)
        xyxy = (xyxy + sign * magnitude * half * 2 * self.box_noise_scale).clamp(0.0, 1.0)
        noised = box_convert(xyxy, "xyxy", "cxcywh")
        return torch.cat([noised[..., :2], noised[..., 2:].clamp(min=1e-3)], dim=-1)

    def _label_noise(self, labels: Tensor, generator) -> Tensor:
        if self.label_noise_ratio <= 0 or self.num_classes <= 1:
            return labels
        flip = torch.rand(labels.shape, device=labels.device, generator=generator) < self.label_noise_ratio
        random_labels = torch.randint(0, self.num_classes, labels.shape, device=labels.device, generator=generator)
        return torch.where(flip, random_labels, labels)

    def _id_noise(self, track: Tensor, positive: Tensor, valid: Tensor, frames: int, generator) -> Tensor:
        """Per frame, the track whose boxes a query is given: for a positive picked with probability
        ``id_noise_ratio``, another real track's boxes from a random frame on (its target stays its own).
        Real tracks come first in every sample (``TrackTargets.valid`` is a prefix)."""
        source = track[:, None, :].expand(-1, frames, -1)
        if self.id_noise_ratio <= 0 or valid.shape[1] < 2 or frames < 2:
            return source
        shape = track.shape
        real = valid.sum(dim=1, keepdim=True)  # [B,1]
        swap = torch.rand(shape, device=track.device, generator=generator) < self.id_noise_ratio
        swap &= positive & (track < real) & (real >= 2)
        offset = 1 + (torch.rand(shape, device=track.device, generator=generator) * (real - 1).clamp(min=0)).long()
        partner = (track + offset) % real.clamp(min=1)  # any other real track
        start = torch.randint(1, frames, shape, device=track.device, generator=generator)
        after = torch.arange(frames, device=track.device)[None, :, None] >= start[:, None, :]
        return torch.where(swap[:, None, :] & after, partner[:, None, :], source)

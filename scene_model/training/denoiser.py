"""DinoDenoiser: DINO-style contrastive denoising targets for track queries.

For each of ``num_groups`` groups and each ground-truth track of a window, two noised copies of the
track's boxes are made: a positive (noise up to ``box_noise_scale`` / 2 of the box size, to be
reconstructed) and a negative (noise between that and ``box_noise_scale``, to be rejected as "no
object"). Labels are flipped with probability ``label_noise_ratio``; with probability ``id_noise_ratio`` a
positive query is given another track's boxes from a random frame on while its target stays its own
track, which teaches the decoder to repair identity switches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from scene_model.data.types import TrackTargets


@dataclass
class DenoisingState:
    """Denoising queries of a batch: D = num_groups * 2 * K queries per sample."""

    boxes: Tensor  # float[B, T, D, 4] noised (cx, cy, w, h) in 0..1
    labels: Tensor  # long[B, D] noised labels
    present: Tensor  # bool[B, T, D] the source track has a box in frame t
    positive: Tensor  # bool[B, D] True for a positive (reconstruct), False for a negative (reject)
    track: Tensor  # long[B, D] the track k whose boxes the query must reconstruct
    valid: Tensor  # bool[B, D] the source track is real (not batch padding)
    num_groups: int

    @property
    def num_queries(self) -> int:
        return self.labels.shape[1]


class DinoDenoiser:
    def __init__(
        self,
        enabled: bool = False,
        num_groups: int = 2,
        box_noise_scale: float = 0.4,
        label_noise_ratio: float = 0.2,
        id_noise_ratio: float = 0.1,
        num_classes: int = 1,
    ) -> None:
        self.enabled = enabled
        self.num_groups = num_groups
        self.box_noise_scale = box_noise_scale
        self.label_noise_ratio = label_noise_ratio
        self.id_noise_ratio = id_noise_ratio
        self.num_classes = num_classes

    def make_noise(self, tracks: TrackTargets, generator: torch.Generator | None = None) -> DenoisingState | None:
        """Noised copies of ``tracks``; None when there is no track in the batch."""
        batch, frames, num_tracks, _ = tracks.boxes.shape
        if num_tracks == 0 or self.num_groups == 0:
            return None
        device = tracks.boxes.device
        copies = self.num_groups * 2
        # Queries are laid out group by group: [pos k=0..K-1, neg k=0..K-1] per group.
        positive = torch.zeros(copies, num_tracks, dtype=torch.bool, device=device)
        positive[0::2] = True
        positive = positive.flatten()[None].expand(batch, -1)
        track = torch.arange(num_tracks, device=device).repeat(copies)[None].expand(batch, -1).contiguous()
        source = self._id_noise(track, positive, tracks.valid, frames, generator)  # [B,T,D]
        boxes = torch.gather(tracks.boxes, 2, source[..., None].expand(batch, frames, -1, 4))
        present = torch.gather(tracks.present, 2, track[:, None, :].expand(batch, frames, -1))
        labels = torch.gather(tracks.labels, 1, track)
        valid = torch.gather(tracks.valid, 1, track)
        boxes = self._box_noise(boxes, positive, generator)
        labels = self._label_noise(labels, generator)
        return DenoisingState(boxes, labels, present, positive.clone(), track, valid, self.num_groups)

    def _box_noise(self, boxes: Tensor, positive: Tensor, generator) -> Tensor:
        """Jitter each corner by up to half the box size times the scale; negatives farther than positives."""
        xyxy = torch.cat([boxes[..., :2] - boxes[..., 2:] / 2, boxes[..., :2] + boxes[..., 2:] / 2], dim=-1)
        half = boxes[..., 2:].repeat(1, 1, 1, 2) / 2
        sign = torch.randint(0, 2, boxes.shape, device=boxes.device, generator=generator) * 2.0 - 1.0
        magnitude = torch.rand(boxes.shape, device=boxes.device, generator=generator)
        magnitude = torch.where(positive[:, None, :, None], magnitude * 0.5, 0.5 + magnitude * 0.5)
        xyxy = (xyxy + sign * magnitude * half * 2 * self.box_noise_scale).clamp(0.0, 1.0)
        center, size = (xyxy[..., :2] + xyxy[..., 2:]) / 2, (xyxy[..., 2:] - xyxy[..., :2]).clamp(min=1e-3)
        return torch.cat([center, size], dim=-1)

    def _label_noise(self, labels: Tensor, generator) -> Tensor:
        if self.label_noise_ratio <= 0 or self.num_classes <= 1:
            return labels
        flip = torch.rand(labels.shape, device=labels.device, generator=generator) < self.label_noise_ratio
        random_labels = torch.randint(0, self.num_classes, labels.shape, device=labels.device, generator=generator)
        return torch.where(flip, random_labels, labels)

    def _id_noise(self, track: Tensor, positive: Tensor, valid: Tensor, frames: int, generator) -> Tensor:
        """Per frame, the track whose boxes a query is given: for a positive picked with probability
        ``id_noise_ratio``, another track's boxes from a random frame on (its target stays its own)."""
        source = track[:, None, :].expand(-1, frames, -1)
        if self.id_noise_ratio <= 0 or valid.shape[1] < 2 or frames < 2:
            return source
        shape = track.shape
        swap = torch.rand(shape, device=track.device, generator=generator) < self.id_noise_ratio
        partner = torch.randint(0, valid.shape[1], shape, device=track.device, generator=generator)
        swap &= positive & torch.gather(valid, 1, partner)
        start = torch.randint(1, frames, shape, device=track.device, generator=generator)
        after = torch.arange(frames, device=track.device)[None, :, None] >= start[:, None, :]
        return torch.where(swap[:, None, :] & after, partner[:, None, :], source)

"""``association=track_queries``: queries carried from window to window (MOTR's track queries).

The queries of a window that follow an object go on into the next window of the sequence as extra
queries, decoded after the Q detect queries: each starts from its last hidden state (through a
residual MLP, MOTR's query interaction reduced) and its box on the frame the windows share, and
keeps its identity there. In training (chains of windows) a carried query keeps the track it followed,
fixed rather than re-matched (where the track is gone it must say so), each is dropped with
probability ``drop`` (its object must then be found again by a detect query) and a sample also
carries, with probability ``false_positive``, its best detect query that was given no track, which
must learn to vanish. In tracking a carried query keeps its track's id and comes first in the window
NMS; the detect queries start new tracks. MOTR's exclusive assignment (detect queries matched only to
tracks no carried query follows) was measured worse and is not offered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from scene_model.association.base import Association, CarriedTargets, Chain, TrackLinker, WindowView
from scene_model.boxes import from_pixels, output_boxes, to_pixels
from scene_model.data.types import SceneBatch
from scene_model.errors import ConfigError
from scene_model.models.head import MLP, prediction_scores
from scene_model.models.scene_model import CarriedQueries


class QueryUpdate(nn.Module):
    """hidden [..., d] -> the content a carried query starts the next window with: LayerNorm(h + MLP(h))."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.mlp = MLP(d_model, d_model, d_model, 2)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.norm(hidden + self.mlp(hidden))


@dataclass
class Following:
    """The queries a sequence's window hands to its next window: their content (on the model's device),
    their boxes on the shared frame in pixels of the original image (a batch's canvas may differ from
    the next one's) and their track ids."""

    content: Tensor  # float[K, d]
    boxes: Tensor  # float[K, 4] x1y1x2y2 pixels
    ids: Tensor  # long[K]


class TrackQueryChain(Chain):
    def __init__(self, association: TrackQueries, train: bool) -> None:
        self.association, self.train = association, train
        self.carried: CarriedQueries | None = None
        self.carried_targets: CarriedTargets | None = None

    def queries(self) -> CarriedQueries | None:
        return self.carried

    def targets(self) -> CarriedTargets | None:
        return self.carried_targets

    def add(self, window: SceneBatch, outputs: dict[str, Any], assigned: Tensor) -> None:
        present = (window.tracks.present & ~window.padding_mask[:, :, None]).any(1)  # [B,K]
        scores = prediction_scores(outputs).mean(1).detach()  # [B,N]
        keep, track = self.association.kept(assigned, present, scores, outputs["bbox_center"].shape[2] - self.count, self.train)
        last = (~window.padding_mask).sum(1) - 1
        self.carried = self.association.carry(outputs, last, keep)
        followed = torch.where(self.carried.padding, -1, torch.gather(track, 1, self.carried.source))
        self.carried_targets = CarriedTargets(followed, ~self.carried.padding)

    @property
    def count(self) -> int:
        return self.carried.content.shape[1] if self.carried is not None else 0


class TrackQueries(Association):
    carries = True

    def __init__(self, d_model: int, drop: float, false_positive: float, chain_len: int) -> None:
        super().__init__()
        if chain_len < 2:
            raise ConfigError(f"association.chain_len={chain_len}: track queries are trained across windows; expected 2 or more")
        self.chain_len = chain_len
        self.drop, self.false_positive = drop, false_positive
        self.update = QueryUpdate(d_model)

    def chain(self, train: bool) -> Chain:
        return TrackQueryChain(self, train)

    def kept(self, assigned: Tensor, present: Tensor, scores: Tensor, detect: int, train: bool) -> tuple[Tensor, Tensor]:
        """Which queries of a window go on into the next window of a chain, and the track each follows.

        assigned long[B,N]: each query's track; present bool[B,K]: the track is in the window; scores
        float[B,N]: each query's mean existence probability; the first ``detect`` queries are detect
        queries. Every query given a track that is in the window goes on (one whose track is gone is let
        go); in training each is dropped with probability ``drop``, and with probability
        ``false_positive`` a sample also carries its best-scoring detect query given no track. Returns
        (keep bool[B,N], track long[B,N], -1 for none)."""
        follows = assigned >= 0
        track = torch.where(follows & torch.gather(present, 1, assigned.clamp(min=0)), assigned, -1)
        keep = track >= 0
        if not train:
            return keep, track
        keep &= torch.rand(keep.shape, device=keep.device) >= self.drop
        free = ~follows
        free[:, detect:] = False
        best = torch.where(free, scores, float("-inf")).argmax(1, keepdim=True)  # [B,1]
        add = (torch.rand(best.shape, device=keep.device) < self.false_positive) & free.any(1, keepdim=True)
        return keep.scatter(1, best, torch.gather(keep, 1, best) | add), track

    def carry(self, outputs: dict[str, Any], frame: Tensor, keep: Tensor) -> CarriedQueries:
        """The queries a window hands to the next one: for the queries ``keep`` bool[B,N] of each sample,
        their last-layer state (through ``update``) and box on frame ``frame`` long[B] (the frame the
        windows share), packed to the front in query order; K = the most kept in a sample (one host read
        of that count)."""
        batch = outputs["hidden"].shape[0]
        rows = torch.arange(batch, device=frame.device)
        hidden = outputs["hidden"][rows, frame]  # [B,N,d]
        boxes = output_boxes(outputs)[rows, frame].detach()  # [B,N,4]
        count = int(keep.sum(1).max()) if keep.numel() else 0
        order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices[:, :count]  # kept first, in query order
        padding = torch.arange(count, device=keep.device)[None, :] >= keep.sum(1, keepdim=True)
        gather = lambda x: torch.gather(x, 1, order[..., None].expand(-1, -1, x.shape[-1]))  # noqa: E731
        return CarriedQueries(self.update(gather(hidden)), gather(boxes), padding, order)

    # --- tracking ------------------------------------------------------------------------------------
    def queries_for(self, linkers: Sequence[TrackLinker], scale: Tensor) -> tuple[CarriedQueries | None, Tensor]:
        """The carried queries of a batch (one window of each linker's sequence, ``scale`` float[B, 4] its
        pixel scale; None when no sample carries one) and their ids long[B, K] (-1 for an empty slot)."""
        states: list[Following | None] = [linker.memory for linker in linkers]
        count = max((len(s.ids) for s in states if s is not None), default=0)
        ids = torch.full((len(states), count), -1, dtype=torch.long)
        if count == 0:
            return None, ids
        reference = next(s.content for s in states if s is not None and len(s.ids))
        content = reference.new_zeros(len(states), count, reference.shape[-1])
        boxes = torch.full((len(states), count, 4), 0.5)
        for b, state in enumerate(states):
            if state is not None and len(state.ids):
                k = len(state.ids)
                content[b, :k], ids[b, :k] = state.content, state.ids
                boxes[b, :k] = from_pixels(state.boxes, scale[b]).clamp(1e-3, 1.0)
        source = torch.arange(count)[None].expand(len(states), -1)
        return CarriedQueries(content, boxes, ids < 0, source), ids

    def carry_on(self, outputs: dict[str, Any], padding_mask: Tensor, linkers: Sequence[TrackLinker], scale: Tensor,
                 limits: Tensor) -> None:
        """After a batch is linked: each linker's queries that continue a track go on into its next window."""
        device = outputs["hidden"].device
        keep = torch.stack([linker.previous_tracks >= 0 for linker in linkers])
        last = (~padding_mask).sum(1) - 1
        following = self.carry(outputs, last.to(device), keep.to(device))
        for b, linker in enumerate(linkers):
            count = int((~following.padding[b]).sum())
            boxes = to_pixels(following.boxes[b, :count].float().cpu(), scale[b], limits[b])
            ids = linker.previous_tracks[following.source[b, :count].cpu()]
            linker.memory = Following(following.content[b, :count], boxes, ids)

    def link(self, linker: TrackLinker, window: WindowView) -> Tensor:
        return window.carried.clone()  # a carried query keeps its track; detect queries start new ones

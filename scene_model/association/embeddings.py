"""``association=embeddings``: each query's identity on every frame as a learned embedding.

An MLP on the decoder's last hidden state gives each query a unit embedding per frame. In training
(chains of windows sharing one frame each) the embeddings of two consecutive windows on the frame they
share are trained to tell which query of one window is the track a query of the other follows: a
cross-entropy over the other window's queries, both ways (QDTrack-like). In tracking the new window's
queries are matched to the tracked queries of the previous one by the dual softmax of those
similarities (as trained) times the query's mean score, among the pairs that pass the IoU gate
``eval.tracker.link_iou``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from scene_model.association.base import Association, Chain, TrackLinker, WindowView, first_and_last
from scene_model.association.iou import match_gated
from scene_model.data.types import SceneBatch
from scene_model.distributed import mean_over_ranks
from scene_model.errors import ConfigError
from scene_model.models.head import MLP

TEMPERATURE = 0.1  # similarities are cosines / TEMPERATURE, in training and in tracking


def link_loss(before: Tensor, assigned_before: Tensor, after: Tensor, assigned_after: Tensor) -> Tensor:
    """Cross-entropy of telling, on the frame two consecutive windows share, which query of one window is
    the track a query of the other follows (both ways, over all queries).

    before float[B,N1,e], after float[B,N2,e]: the unit embeddings of the two windows' queries on the
    shared frame; assigned_* long[B,N]: each query's track (-1: none). A query counts when its track has
    a query in the other window."""
    with torch.autocast(before.device.type, enabled=False):
        before, after = before.float(), after.float()
        similarity = after @ before.transpose(1, 2) / TEMPERATURE  # [B,N2,N1]
        same = (assigned_after[:, :, None] == assigned_before[:, None, :]) & (assigned_after >= 0)[:, :, None]
        terms = []
        for logits, pairs in ((similarity, same), (similarity.transpose(1, 2), same.transpose(1, 2))):
            counted = pairs.any(-1)
            loss = F.cross_entropy(logits.transpose(1, 2), pairs.float().argmax(-1), reduction="none")  # [B,N]
            terms.append(torch.where(counted, loss, 0.0).sum() / mean_over_ranks(counted.sum().float()).clamp(min=1.0))
        return (terms[0] + terms[1]) / 2


@dataclass
class EmbeddingChain(Chain):
    association: LinkEmbeddings
    train: bool
    terms: list[Tensor] = field(default_factory=list)
    last: tuple[Tensor, Tensor] | None = None  # (embeddings on the window's last frame, assigned) of the window before

    def add(self, window: SceneBatch, outputs: dict[str, Any], assigned: Tensor) -> None:
        first, last = self.association.window_features(outputs, window).split(self.association.link_dim, dim=-1)
        if self.last is not None:
            self.terms.append(link_loss(self.last[0], self.last[1], first, assigned))
        self.last = (last, assigned)

    def losses(self) -> dict[str, Tensor]:
        if not self.terms:
            return {}
        return {"link": self.association.weight * torch.stack(self.terms).mean()}


class LinkEmbeddings(Association):
    def __init__(self, d_model: int, link_dim: int, weight: float, chain_len: int) -> None:
        super().__init__()
        if chain_len < 2:
            raise ConfigError(f"association.chain_len={chain_len}: link embeddings are trained across windows; expected 2 or more")
        self.chain_len = chain_len
        self.link_dim = link_dim
        self.weight = weight
        self.mlp = MLP(d_model, d_model, link_dim, 2)

    def embed(self, hidden: Tensor) -> Tensor:
        """hidden [..., d] -> unit embeddings [..., link_dim]."""
        return F.normalize(self.mlp(hidden), dim=-1)

    def chain(self, train: bool) -> Chain:
        return EmbeddingChain(self, train)

    def window_features(self, outputs: dict[str, Any], batch: SceneBatch) -> Tensor:
        """[B, N, 2 e]: each query's embedding on its window's first frame, then on its last."""
        padding = batch.padding_mask.to(outputs["hidden"].device)
        return torch.cat(first_and_last(self.embed(outputs["hidden"]), padding), dim=-1)

    def link(self, linker: TrackLinker, window: WindowView) -> Tensor:
        tracks = torch.full((window.scores.shape[1],), -1, dtype=torch.long)
        previous, before = linker.previous, linker.memory
        if previous is None or before is None:
            return tracks
        active = (linker.previous_tracks >= 0).nonzero().flatten()
        iou = window.shared_iou(previous, active) if len(active) else None
        if iou is None:
            return tracks
        similarity = before[active] @ window.features[:, : self.link_dim].T / TEMPERATURE  # [A, N]
        similarity = similarity.masked_fill(window.dropped[None, :], float("-inf"))
        objective = similarity.softmax(1) * similarity.softmax(0) * window.scores.mean(0)[None, :]
        rows, cols = match_gated(objective, iou, linker.options.link_iou, window.dropped)
        tracks[cols] = linker.previous_tracks[active[rows]]
        return tracks

    def remember(self, linker: TrackLinker, window: WindowView, tracks: Tensor) -> None:
        linker.memory = window.features[:, self.link_dim :]  # the embeddings on the window's last frame

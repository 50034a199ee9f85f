"""Encoder proposals and query selection (Deformable DETR's two-stage, DINO's mixed query selection).

Every encoder cell of every frame predicts a class logit and a box relative to an anchor centred on
the cell. The proposals are supervised frame by frame like a dense detector (frame-level Hungarian
matching, see training.head_adapter), which gives the backbone and encoder a direct signal from the
first step. A window's Q track queries start from the Q cells that score highest in any frame of the
window, each from its cell's box in that best frame, the same box in every frame (the decoder moves it
frame by frame); one cell seen in several frames is one query, not T duplicates. The content part of
the queries stays learned.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from scene_model.boxes import inverse_sigmoid
from scene_model.models.head import MLP


def cell_anchors(shapes: list[tuple[int, int]], base_size: float, device: torch.device) -> Tensor:
    """Anchors (cx, cy, w, h) in 0..1 of the canvas for the cells of each level, finest first,
    float[S, 4]; the anchor side doubles from one level to the next."""
    anchors = []
    for level, (height, width) in enumerate(shapes):
        ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
        xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
        cy, cx = torch.meshgrid(ys, xs, indexing="ij")
        side = torch.full_like(cx, base_size * 2**level)
        anchors.append(torch.stack([cx, cy, side, side], dim=-1).flatten(0, 1))
    return torch.cat(anchors)


class ProposalHead(nn.Module):
    """memory [N,S,d] -> per-cell class logits [N,S,C] and boxes (cx, cy, w, h) in 0..1 [N,S,4]."""

    def __init__(self, d_model: int, num_classes: int, prior_prob: float = 0.01, anchor_size: float = 0.05) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Linear(d_model, d_model), nn.LayerNorm(d_model))
        self.cls = nn.Linear(d_model, num_classes)
        self.box = MLP(d_model, d_model, 4, 3)
        self.anchor_size = anchor_size
        nn.init.constant_(self.cls.bias, -math.log((1 - prior_prob) / prior_prob))
        nn.init.zeros_(self.box[-1].weight)
        nn.init.zeros_(self.box[-1].bias)

    def forward(self, memory: Tensor, shapes: list[tuple[int, int]]) -> tuple[Tensor, Tensor]:
        hidden = self.project(memory)
        anchors = inverse_sigmoid(cell_anchors(shapes, self.anchor_size, memory.device))
        boxes = (self.box(hidden) + anchors).sigmoid()
        return self.cls(hidden), boxes


def select_queries(
    logits: Tensor,
    boxes: Tensor,
    count: int,
    frame_padding: Tensor,
    cell_padding: Tensor | None = None,
) -> Tensor:
    """The reference boxes of ``count`` track queries, float[B, T, count, 4] (detached).

    logits [B,T,S,C] and boxes [B,T,S,4] of the proposals; frame_padding bool[B,T] (padded frames do
    not vote); cell_padding bool[B,S] (cells outside the image are never chosen). A cell's score is its
    best class logit in its best frame; the ``count`` best cells are chosen per sample, and a chosen
    cell's box in its best frame is the query's reference in every frame (the decoder moves it per
    frame).
    """
    frames, cells = boxes.shape[1:3]
    per_frame = logits.detach().amax(-1).masked_fill(frame_padding[:, :, None], float("-inf"))  # [B,T,S]
    score, best_frame = per_frame.max(1)  # [B,S]
    flat = boxes.detach().flatten(1, 2)  # [B,T*S,4]
    cell_boxes = torch.gather(flat, 1, (best_frame * cells + torch.arange(cells, device=flat.device))[..., None].expand(-1, -1, 4))
    if cell_padding is not None:
        score = score.masked_fill(cell_padding, float("-inf"))
    chosen = score.topk(min(count, cells), dim=1).indices  # [B,count]
    picked = torch.gather(cell_boxes, 1, chosen[..., None].expand(-1, -1, 4))
    return picked[:, None].expand(-1, frames, -1, -1)

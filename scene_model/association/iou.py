"""``association=iou``: consecutive windows linked on the frame they share, by IoU and height.

Nothing is learned: the queries of the new window are matched to the tracked queries of the previous
one on the frames the two windows share (Hungarian on the mean IoU times the new query's mean score
over its window, times the height term ``TrackLinker.height_agreement``). A pair needs a mean IoU of
``eval.tracker.link_iou``: pairs below it are out before the match, so that a neighbour that barely
overlaps cannot outbid the track's own query (whose height may have changed) and then be refused.
The score factor makes, of two queries on one object, the one that is there carry the track, not a
near-empty duplicate that happens to overlap more.
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from scene_model.association.base import Association, TrackLinker, WindowView


def match_gated(objective: Tensor, iou: Tensor, gate: float, dropped: Tensor) -> tuple[Tensor, Tensor]:
    """(rows, cols) of the Hungarian match maximising ``objective`` float[A, N] among the pairs whose
    ``iou`` reaches ``gate``; ``dropped`` queries take no track. NaN in ``objective`` counts as 0."""
    objective = torch.nan_to_num(objective).masked_fill(iou < gate, 0.0).masked_fill(dropped[None, :], -1.0)
    rows, cols = (torch.from_numpy(x) for x in linear_sum_assignment(objective.numpy(), maximize=True))
    ok = (iou[rows, cols] >= gate) & ~dropped[cols]
    return rows[ok], cols[ok]


class IouLink(Association):
    """IoU and height on the shared frame; no parameters, no loss, windows one at a time."""

    def link(self, linker: TrackLinker, window: WindowView) -> Tensor:
        tracks = torch.full((window.scores.shape[1],), -1, dtype=torch.long)
        previous = linker.previous
        if previous is None:
            return tracks
        active = (linker.previous_tracks >= 0).nonzero().flatten()
        iou = window.shared_iou(previous, active) if len(active) else None
        if iou is None:
            return tracks
        held = linker.previous_tracks[active]
        objective = iou * window.scores.mean(0)[None, :] * linker.height_agreement(held, window.boxes)
        rows, cols = match_gated(objective, iou, linker.options.link_iou, window.dropped)
        tracks[cols] = held[rows]
        return tracks

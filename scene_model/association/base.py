"""What an association is: one way of carrying identity from window to window (``conf/association``).

A window's queries are objects for its T frames; which query of the next window is which track is
the association's question. Each mechanism is one class in this package, selected by
``association=<name>``, and answers it in three places:

- **The model**: the parts it adds are its own parameters (it is a module of the Lightning module),
  and with ``carries`` it hands the decoder extra queries for the next window (``CarriedQueries``).
- **Training**: samples are chains of ``chain_len`` consecutive windows of one sequence. A ``Chain``
  sees each window's outputs and the track each query was matched to, may carry queries into the next
  window with fixed targets (``CarriedTargets``), and returns its loss terms over the chain.
- **Tracking** (validation, ``train=false``, the tools): ``window_features`` is what the tracker
  keeps of a window's queries, and ``link`` decides which tracks the new window's queries continue,
  reading and updating the sequence's ``TrackLinker``: its tracks and its ``memory``, which the
  mechanism owns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torchvision.ops import box_iou

from scene_model.data.types import SceneBatch
from scene_model.models.scene_model import CarriedQueries


@dataclass
class WindowView:
    """One window of a sequence as the linker sees it."""

    frames: np.ndarray  # int64[T], 1-based, increasing
    boxes: Tensor  # float[T, N, 4] (x1, y1, x2, y2) pixels
    scores: Tensor  # float[T, N]
    features: Tensor | None  # float[N, f]: the association's window_features
    dropped: Tensor  # bool[N]: duplicates (window NMS), never linked or written
    carried: Tensor | None  # long[N]: the track each carried query follows (-1: a detect query)

    def shared_iou(self, previous: WindowView, queries: Tensor) -> Tensor | None:
        """float[len(queries), N]: mean IoU over the frames this window shares with ``previous`` between
        the boxes of ``queries`` (of ``previous``) and every query here; None when no frame is shared."""
        shared_prev = np.isin(previous.frames, self.frames)
        shared_new = np.isin(self.frames, previous.frames)
        if not shared_new.any():
            return None
        prev = previous.boxes[torch.from_numpy(shared_prev)][:, queries]  # [S, A, 4]
        new = self.boxes[torch.from_numpy(shared_new)]  # [S, N, 4]
        return torch.stack([box_iou(p, n) for p, n in zip(prev, new, strict=True)]).mean(0)


class TrackLinker(Protocol):
    """What an association sees of a sequence's tracking state (``tracking.linker.TrackLinker``)."""

    options: Any  # the tracker's options (``tracking.options.TrackerOptions``)
    tracks: dict[int, Any]  # the running tracks, by id
    previous: WindowView | None  # the window before
    previous_tracks: Tensor | None  # long[N]: the track each of its queries continued, -1 none
    memory: Any  # the association's own, kept for the next window

    def height_agreement(self, tracks: Tensor, boxes: Tensor) -> Tensor: ...


@dataclass
class CarriedTargets:
    """What the K carried queries of a window must follow: the track each was given in the window
    before (-1: none, a false positive that must vanish) and which slots are real."""

    track: Tensor  # long[B, K]
    valid: Tensor  # bool[B, K]


class Chain:
    """What an association keeps over the windows of one batch of training chains; fed window by window."""

    def queries(self) -> CarriedQueries | None:
        """The extra queries the next window is decoded with (None: none)."""
        return None

    def targets(self) -> CarriedTargets | None:
        """What those queries must follow (None without them)."""
        return None

    def add(self, window: SceneBatch, outputs: dict[str, Any], assigned: Tensor) -> None:
        """One decoded window: its batch, the model's outputs, and ``assigned`` long[B, N], the track of
        each query (an index into ``window.tracks``, -1: none)."""

    def losses(self) -> dict[str, Tensor]:
        """The association's loss terms over the chain, weighted, each added to the total."""
        return {}


class Association(nn.Module):
    """The interface; ``IouLink`` is the mechanism without parameters."""

    chain_len: int = 1  # windows per training sample
    carries: bool = False  # queries go on into the next window: one window of a sequence per batch

    def chain(self, train: bool) -> Chain:
        """A fresh chain memory for one batch (``train``: a training step, else a validation window)."""
        return Chain()

    def window_features(self, outputs: dict[str, Any], batch: SceneBatch) -> Tensor | None:
        """float[B, N, f]: what tracking keeps of each query of the windows of ``batch`` beside its boxes
        and scores (None: nothing)."""
        return None

    def link(self, linker: TrackLinker, window: WindowView) -> Tensor:
        """long[N]: the track each query of ``window`` continues (-1: none yet), from what ``linker``
        knows of the sequence so far; ``window.dropped`` queries (duplicates) take none."""
        raise NotImplementedError

    def remember(self, linker: TrackLinker, window: WindowView, tracks: Tensor) -> None:
        """After the window is written: keep in ``linker.memory`` what the next ``link`` needs."""

    # --- tracking, for an association that ``carries`` queries -------------------------------------------
    def queries_for(self, linkers: Sequence[TrackLinker], scale: Tensor) -> tuple[CarriedQueries | None, Tensor]:
        """The queries a batch (one window of each linker's sequence; ``scale`` float[B, 4], its
        ``predictions.pixel_scale``) is decoded with, and the track each follows, long[B, K] (-1: an empty slot)."""
        raise NotImplementedError

    def carry_on(self, outputs: dict[str, Any], padding_mask: Tensor, linkers: Sequence[TrackLinker], scale: Tensor,
                 limits: Tensor) -> None:
        """After a batch is linked: what each linker's sequence carries into its next window, in its ``memory``."""
        raise NotImplementedError


def first_and_last(values: Tensor, padding_mask: Tensor) -> tuple[Tensor, Tensor]:
    """values [B, T, N, ...] -> (values on each sample's first frame, on its last real frame), [B, N, ...]."""
    rows = torch.arange(values.shape[0], device=values.device)
    last = (~padding_mask).sum(1).clamp(min=1).to(values.device) - 1
    return values[:, 0], values[rows, last]

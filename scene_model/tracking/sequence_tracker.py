"""Sequence inference: predictions of overlapping windows -> linked tracks, in original image pixels."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from scene_model.boxes import from_pixels, to_pixels
from scene_model.data.types import SceneBatch
from scene_model.errors import ConfigError
from scene_model.models.scene_model import TrackQueries
from scene_model.tracking.linker import TrackLinker
from scene_model.tracking.mot_results import empty_rows
from scene_model.tracking.options import TrackerOptions
from scene_model.tracking.predictions import WindowPrediction, pixel_scale, window_predictions
from scene_model.tracking.track_postprocess import interpolate_gaps, smooth_tracks

Predict = Callable[..., dict[str, Tensor]]  # (batch[, tracks]) -> model outputs: a module's ``predict``
Carry = Callable[[dict[str, Tensor], Tensor, Tensor], TrackQueries]  # SceneModel.carry
Observe = Callable[[SceneBatch, list[WindowPrediction]], None]


def check_overlap(clip_len: int, stride: int) -> None:
    """Windows are linked on the frames they share: ``1 <= stride < clip_len`` (``data.val_stride``)."""
    if clip_len < 2:
        raise ConfigError(f"sequence inference links windows on shared frames: needs data.clip_len >= 2, got {clip_len}")
    if not 1 <= stride < clip_len:
        raise ConfigError(
            f"data.val_stride={stride}; expected 1 <= val_stride < data.clip_len={clip_len} "
            "(the tracker links windows on the frames they share; null: clip_len - 1)"
        )


class SequenceTracker:
    """Tracks whole sequences from window predictions (conf/eval: ``eval.tracker``).

    The windows are the data module's evaluation windows (``DancetrackDataModule.eval_windows``,
    overlapping by ``clip_len - data.val_stride`` frames); ``options`` (``TrackerOptions``) hold the
    thresholds of ``TrackLinker`` and the post-processing (``track_postprocess``): the frames a track
    went without a box are filled by interpolation (``interpolate``) and its boxes are smoothed over
    time by a Gaussian of ``smooth_sigma`` frames (0: off).
    """

    def __init__(self, options: TrackerOptions | None = None) -> None:
        self.options = options or TrackerOptions()

    def session(self, sequences: Sequence[str], carry: Carry | None = None) -> TrackingSession:
        """An ordered pass over the windows of ``sequences``, fed batch by batch (``TrackingSession``)."""
        return TrackingSession(self, sequences, carry)

    def link(self, windows: Iterable[WindowPrediction], sequences: Sequence[str]) -> dict[str, np.ndarray]:
        """Link window predictions, in any order and possibly repeated, into {sequence: rows float64[N, 7]}
        for every name of ``sequences`` (a sequence without a box gets empty rows)."""
        session = self.session(sequences)
        for _, window in sorted({w.key: w for w in windows}.items()):
            session.add(window)
        return session.results()

    def post_process(self, rows: np.ndarray) -> np.ndarray:
        """A sequence's linked rows with the gaps filled (``interpolate``) and smoothed (``smooth_sigma``)."""
        if self.options.interpolate:
            rows = interpolate_gaps(rows)
        return smooth_tracks(rows, self.options.smooth_sigma)

    def track(
        self,
        predict: Predict,
        batches: Iterable[SceneBatch],
        sequences: Sequence[str],
        carry: Carry | None = None,
        observe: Observe | None = None,
    ) -> dict[str, np.ndarray]:
        """Run ``predict`` over batches of windows, each sequence's windows in order, and link them into
        {sequence: rows float64[N, 7]}. With ``carry`` (a model's ``SceneModel.carry``: its track queries)
        each window's queries that hold a track go on into the sequence's next window (one window of a
        sequence per batch, ``eval_windows``). ``observe(batch, windows)`` sees every batch with its
        window predictions (diagnostics, pictures)."""
        session = self.session(sequences, carry)
        for batch in batches:
            tracks = session.carried(batch)
            windows = session.step(batch, predict(batch) if tracks is None else predict(batch, tracks))
            if observe is not None:
                observe(batch, windows)
        return session.results()


class TrackingSession:
    """One pass over the evaluation windows of some sequences, each sequence's windows in order: per
    batch, ``carried(batch)`` gives the track queries to decode it with (a model with track queries;
    None otherwise) and ``step(batch, outputs)`` links the model's outputs; ``results()`` ends the pass.
    The validation loop and ``SequenceTracker.track`` both drive one, so a window is run once."""

    def __init__(self, tracker: SequenceTracker, sequences: Sequence[str], carry: Carry | None = None) -> None:
        self.tracker = tracker
        self.carry = carry
        self.linkers: dict[str, TrackLinker] = {}
        self.rows: dict[str, list[np.ndarray]] = {name: [] for name in sequences}
        self.following: dict[str, Carried] = {}
        self.ids: Tensor | None = None  # long[B, K]: the track of each carried query of the batch being run

    def linker(self, sequence: str) -> TrackLinker:
        return self.linkers.setdefault(sequence, TrackLinker(self.tracker.options))

    def carried(self, batch: SceneBatch) -> TrackQueries | None:
        """The track queries ``batch`` is decoded with (None without ``carry``, or when none goes on)."""
        if self.carry is None:
            return None
        names = batch.sequence_ids
        if len(set(names)) < len(names):
            raise ValueError(f"a batch holds two windows of one sequence ({names}): carried queries need one per batch")
        tracks, self.ids = Carried.queries([self.following.get(name) for name in names], pixel_scale(batch)[0])
        return tracks

    def add(self, window: WindowPrediction, query_ids: Tensor | None = None) -> Tensor:
        """Link one window (the next of its sequence); ``query_ids`` long[Q]: the track each query carries
        (track queries; -1 for none). Returns the track id of every query after the window, -1 for none."""
        linker = self.linker(window.sequence)
        self.rows.setdefault(window.sequence, []).append(
            linker.step(window.frames, window.boxes, window.scores, query_ids, embeddings=window.embeddings)
        )
        return linker.prev_tracks

    def step(self, batch: SceneBatch, outputs: dict[str, Tensor]) -> list[WindowPrediction]:
        """Link the model's ``outputs`` for ``batch`` (decoded with ``carried(batch)``); returns its window
        predictions."""
        windows = window_predictions(outputs, batch)
        if self.carry is None:
            for window in windows:
                self.add(window)
            return windows
        queries = outputs["bbox_center"].shape[2]
        ids = self.ids if self.ids is not None else torch.full((len(batch), 0), -1, dtype=torch.long)
        keep = torch.zeros(len(batch), queries, dtype=torch.bool)
        for b, window in enumerate(windows):
            query_ids = torch.cat([torch.full((queries - ids.shape[1],), -1, dtype=torch.long), ids[b]])  # detect queries: -1
            empty = torch.cat([torch.zeros(queries - ids.shape[1], dtype=torch.bool), ids[b] < 0])  # batch padding
            window = replace(window, scores=torch.where(empty[None, :], 0.0, window.scores))  # an empty slot starts nothing
            keep[b] = self.add(window, query_ids) >= 0
        scale, limits = pixel_scale(batch)
        last = (~batch.padding_mask).sum(1) - 1
        device = outputs["hidden"].device
        following = self.carry(outputs, last.to(device), keep.to(device))
        for b, name in enumerate(batch.sequence_ids):
            self.following[name] = Carried.of(following, b, self.linkers[name].prev_tracks, scale[b], limits[b])
        self.ids = None
        return windows

    def results(self) -> dict[str, np.ndarray]:
        """{sequence: rows float64[N, 7]} of every sequence (empty rows for one without a box),
        post-processed."""
        return {name: self.tracker.post_process(np.concatenate(parts)) if parts else empty_rows() for name, parts in self.rows.items()}


@dataclass
class Carried:
    """The track queries a sequence's window hands to its next window: their content (on the model's
    device), their boxes on the shared frame in pixels of the original image (a batch's canvas may
    differ from the next one's) and their track ids."""

    content: Tensor  # float[K, d]
    boxes: Tensor  # float[K, 4] x1y1x2y2 pixels
    ids: Tensor  # long[K]

    @classmethod
    def of(cls, tracks: TrackQueries, b: int, query_ids: Tensor, scale: Tensor, limits: Tensor) -> Carried:
        """Sample ``b`` of ``tracks`` (``SceneModel.carry``'s), the ids from its queries' ``query_ids``."""
        count = int((~tracks.padding[b]).sum())
        boxes = to_pixels(tracks.boxes[b, :count].float().cpu(), scale, limits)
        return cls(tracks.content[b, :count], boxes, query_ids[tracks.source[b, :count].cpu()])

    @staticmethod
    def queries(states: Sequence[Carried | None], scale: Tensor) -> tuple[TrackQueries | None, Tensor]:
        """The track queries of a batch (each sample's carried state, in this batch's canvas; None when
        no sample carries one) and their ids long[B, K] (-1 for an empty slot)."""
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
        return TrackQueries(content, boxes, ids < 0, source), ids

"""Sequence inference: predictions of overlapping windows -> linked tracks, in original image pixels."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import Tensor

from scene_model.association.base import Association
from scene_model.data.types import SceneBatch
from scene_model.errors import ConfigError
from scene_model.models.scene_model import CarriedQueries
from scene_model.tracking.linker import TrackLinker
from scene_model.tracking.mot_results import empty_rows
from scene_model.tracking.options import TrackerOptions
from scene_model.tracking.predictions import WindowPrediction, pixel_scale, window_predictions
from scene_model.tracking.track_postprocess import interpolate_gaps, smooth_tracks

Predict = Callable[..., dict[str, Tensor]]  # (batch[, carried queries]) -> model outputs: a module's ``predict``
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

    def session(self, sequences: Sequence[str], association: Association) -> TrackingSession:
        """An ordered pass over the windows of ``sequences``, fed batch by batch (``TrackingSession``)."""
        return TrackingSession(self, sequences, association)

    def link(self, windows: Iterable[WindowPrediction], sequences: Sequence[str], association: Association) -> dict[str, np.ndarray]:
        """Link window predictions, in any order and possibly repeated, into {sequence: rows float64[N, 7]}
        for every name of ``sequences`` (a sequence without a box gets empty rows)."""
        session = self.session(sequences, association)
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
        association: Association,
        observe: Observe | None = None,
    ) -> dict[str, np.ndarray]:
        """Run ``predict`` over batches of windows, each sequence's windows in order, and link them into
        {sequence: rows float64[N, 7]} as ``association`` says. An association that ``carries`` queries
        has each window's queries that hold a track go on into the sequence's next window (one window of
        a sequence per batch, ``eval_windows``). ``observe(batch, windows)`` sees every batch with its
        window predictions (diagnostics, pictures)."""
        session = self.session(sequences, association)
        for batch in batches:
            carried = session.carried(batch)
            windows = session.step(batch, predict(batch) if carried is None else predict(batch, carried))
            if observe is not None:
                observe(batch, windows)
        return session.results()


class TrackingSession:
    """One pass over the evaluation windows of some sequences, each sequence's windows in order: per
    batch, ``carried(batch)`` gives the queries to decode it with (an association that carries them;
    None otherwise) and ``step(batch, outputs)`` links the model's outputs; ``results()`` ends the pass.
    The validation loop and ``SequenceTracker.track`` both drive one, so a window is run once. Each
    sequence's tracking state is its ``TrackLinker``."""

    def __init__(self, tracker: SequenceTracker, sequences: Sequence[str], association: Association) -> None:
        self.tracker = tracker
        self.association = association
        self.linkers: dict[str, TrackLinker] = {}
        self.rows: dict[str, list[np.ndarray]] = {name: [] for name in sequences}
        self.ids: Tensor | None = None  # long[B, K]: the track of each carried query of the batch being run

    def linker(self, sequence: str) -> TrackLinker:
        return self.linkers.setdefault(sequence, TrackLinker(self.tracker.options, self.association))

    def carried(self, batch: SceneBatch) -> CarriedQueries | None:
        """The queries ``batch`` is decoded with (None for an association that carries none, or when none goes on)."""
        if not self.association.carries:
            return None
        names = batch.sequence_ids
        if len(set(names)) < len(names):
            raise ValueError(f"a batch holds two windows of one sequence ({names}): carried queries need one per batch")
        queries, self.ids = self.association.queries_for([self.linker(name) for name in names], pixel_scale(batch)[0])
        return queries

    def add(self, window: WindowPrediction, carried: Tensor | None = None) -> None:
        """Link one window (the next of its sequence); ``carried`` long[N]: the track each query carries
        (carried queries; -1 for a detect query)."""
        rows = self.linker(window.sequence).step(window.frames, window.boxes, window.scores, carried, window.features)
        self.rows.setdefault(window.sequence, []).append(rows)

    @torch.no_grad()
    def step(self, batch: SceneBatch, outputs: dict[str, Tensor]) -> list[WindowPrediction]:
        """Link the model's ``outputs`` for ``batch`` (decoded with ``carried(batch)``); returns its window
        predictions. Nothing of tracking keeps a gradient (an association's features and carried queries)."""
        windows = window_predictions(outputs, batch, self.association.window_features(outputs, batch))
        if not self.association.carries:
            for window in windows:
                self.add(window)
            return windows
        queries = outputs["bbox_center"].shape[2]
        ids = self.ids if self.ids is not None else torch.full((len(batch), 0), -1, dtype=torch.long)
        for b, window in enumerate(windows):
            detect = queries - ids.shape[1]
            carried = torch.cat([torch.full((detect,), -1, dtype=torch.long), ids[b]])  # detect queries carry nothing
            empty = torch.cat([torch.zeros(detect, dtype=torch.bool), ids[b] < 0])  # a slot of batch padding
            self.add(replace(window, scores=torch.where(empty[None, :], 0.0, window.scores)), carried)  # it starts nothing
        scale, limits = pixel_scale(batch)
        self.association.carry_on(outputs, batch.padding_mask, [self.linkers[name] for name in batch.sequence_ids], scale, limits)
        self.ids = None
        return windows

    def results(self) -> dict[str, np.ndarray]:
        """{sequence: rows float64[N, 7]} of every sequence (empty rows for one without a box),
        post-processed."""
        return {name: self.tracker.post_process(np.concatenate(parts)) if parts else empty_rows() for name, parts in self.rows.items()}

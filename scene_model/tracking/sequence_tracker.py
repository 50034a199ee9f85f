"""Sequence inference: predictions of overlapping windows -> linked tracks, in original image pixels."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

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

    def link(self, windows: Iterable[WindowPrediction], sequences: Sequence[str]) -> dict[str, np.ndarray]:
        """Link window predictions, in any order and possibly repeated (a distributed sampler pads
        with repeats), into {sequence: rows float64[N, 7]} for every name of ``sequences`` (a
        sequence without a box gets empty rows)."""
        ordered = {w.key: w for w in windows}
        linkers: dict[str, TrackLinker] = {}
        rows: dict[str, list[np.ndarray]] = {name: [] for name in sequences}
        for key in sorted(ordered):
            window = ordered[key]
            linker = linkers.setdefault(window.sequence, TrackLinker(self.options))
            rows.setdefault(window.sequence, []).append(
                linker.step(window.frames, window.boxes, window.scores, embeddings=window.embeddings)
            )
        return {name: self._post(np.concatenate(parts)) if parts else empty_rows() for name, parts in rows.items()}

    def _post(self, rows: np.ndarray) -> np.ndarray:
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
        """Run ``predict`` over batches of windows and link them into {sequence: rows float64[N, 7]}.

        Without ``carry`` the windows are linked on IoU (see ``link``). With ``carry`` (a model's
        ``SceneModel.carry``: its track queries) each window's queries that hold a track go on into the
        sequence's next window as track queries and keep its id there; the batches must then hold the
        windows of a sequence in order, one per batch (``eval_windows(..., rounds=True)``).
        ``observe(batch, windows)`` sees every batch with its window predictions (diagnostics, pictures)."""
        if carry is None:
            windows = []
            for batch in batches:
                found = window_predictions(predict(batch), batch)
                if observe is not None:
                    observe(batch, found)
                windows += found
            return self.link(windows, sequences)
        linkers: dict[str, TrackLinker] = {}
        carried: dict[str, Carried] = {}
        rows: dict[str, list[np.ndarray]] = {name: [] for name in sequences}
        for batch in batches:
            names = batch.sequence_ids
            if len(set(names)) < len(names):
                raise ValueError(f"a batch holds two windows of one sequence ({names}): carried queries need one per batch")
            scale, limits = pixel_scale(batch)
            tracks, ids = Carried.queries([carried.get(name) for name in names], scale)
            outputs = predict(batch, tracks)
            windows = window_predictions(outputs, batch)
            if observe is not None:
                observe(batch, windows)
            queries = outputs["bbox_center"].shape[2]
            keep = torch.zeros(len(batch), queries, dtype=torch.bool)
            for b, window in enumerate(windows):
                linker = linkers.setdefault(window.sequence, TrackLinker(self.options))
                query_ids = torch.cat([torch.full((queries - ids.shape[1],), -1, dtype=torch.long), ids[b]])
                empty = torch.cat([torch.zeros(queries - ids.shape[1], dtype=torch.bool), ids[b] < 0])
                scores = torch.where(empty[None, :], 0.0, window.scores)  # empty slots start nothing
                rows[window.sequence].append(linker.step(window.frames, window.boxes, scores, query_ids))
                keep[b] = linker.prev_tracks >= 0
            last = (~batch.padding_mask).sum(1) - 1
            device = outputs["hidden"].device
            following = carry(outputs, last.to(device), keep.to(device))
            for b, name in enumerate(names):
                carried[name] = Carried.of(following, b, linkers[name].prev_tracks, scale[b], limits[b])
        return {name: self._post(np.concatenate(parts)) if parts else empty_rows() for name, parts in rows.items()}


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

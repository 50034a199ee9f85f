"""Sequence inference: predictions of overlapping windows -> linked tracks, in original image pixels."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
from torch import Tensor

from scene_model.data.types import SceneBatch
from scene_model.errors import ConfigError
from scene_model.tracking.linker import TrackLinker
from scene_model.tracking.mot_results import empty_rows
from scene_model.tracking.options import TrackerOptions
from scene_model.tracking.predictions import WindowPrediction, window_predictions
from scene_model.tracking.track_postprocess import interpolate_gaps, smooth_tracks

Predict = Callable[[SceneBatch], dict[str, Tensor]]


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
            rows.setdefault(window.sequence, []).append(linker.step(window.frames, window.boxes, window.scores))
        return {name: self._post(np.concatenate(parts)) if parts else empty_rows() for name, parts in rows.items()}

    def _post(self, rows: np.ndarray) -> np.ndarray:
        if self.options.interpolate:
            rows = interpolate_gaps(rows)
        return smooth_tracks(rows, self.options.smooth_sigma)

    def track(self, predict: Predict, batches: Iterable[SceneBatch], sequences: Sequence[str]) -> dict[str, np.ndarray]:
        """Run ``predict`` over batches of windows and link them (see ``link``)."""
        return self.link((w for batch in batches for w in window_predictions(predict(batch), batch)), sequences)

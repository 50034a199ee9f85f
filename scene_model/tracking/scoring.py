"""Scoring a set of tracks: the one way from tracked sequences to TrackEval's metrics.

The validation's tracking evaluation, ``train=false``, the many-seed benchmark, the threshold sweep and
the oracle all score here: the tracks are written as MOTChallenge result files (``mot_results``) and
scored against the split's ground truth by TrackEval as the DanceTrack benchmark does
(``trackeval_metrics.evaluate_mot``). Scores over several splits or settings are averaged by
``mean_metrics``.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from scene_model.data.datamodule import EvalSplit
from scene_model.tracking.mot_results import write_results
from scene_model.tracking.trackeval_metrics import MotEvaluation, evaluate_mot


def score_tracks(
    results: Mapping[str, np.ndarray], split: EvalSplit, directory: Path | None = None, do_preproc: bool = False
) -> MotEvaluation:
    """``results`` ({sequence: rows}) of ``split`` written as ``<directory>/<sequence>.txt`` (a temporary
    folder without ``directory``) and scored against its ground truth (``do_preproc``: TrackEval's MOT17
    preprocessing; DanceTrack uses none)."""
    if directory is not None:
        return evaluate_mot(split.directory, write_results(directory, results), sequences=split.lengths, do_preproc=do_preproc)
    with tempfile.TemporaryDirectory(prefix="scores_") as scratch:
        return score_tracks(results, split, Path(scratch) / split.name, do_preproc)


def mean_metrics(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Each metric averaged over ``rows`` (the metrics of several splits, checkpoints or settings)."""
    return {name: statistics.fmean(float(row[name]) for row in rows) for name in rows[0]}

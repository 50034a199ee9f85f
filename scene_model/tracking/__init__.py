"""Tracking: clip-to-sequence inference, window linking, MOTChallenge result files, TrackEval metrics."""

from scene_model.tracking.linker import TrackLinker
from scene_model.tracking.mot_results import read_results, write_results, zip_results
from scene_model.tracking.options import TrackerOptions
from scene_model.tracking.sequence_tracker import SequenceTracker
from scene_model.tracking.trackeval_metrics import HEADLINE, MotEvaluation, evaluate_mot, gt_sequences

__all__ = [
    "HEADLINE",
    "MotEvaluation",
    "SequenceTracker",
    "TrackerOptions",
    "TrackLinker",
    "evaluate_mot",
    "gt_sequences",
    "read_results",
    "write_results",
    "zip_results",
]

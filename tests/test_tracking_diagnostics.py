"""Detection diagnostics: matched IoU, best-query recall, score AUC and counts of a validation pass."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scene_model.tracking.diagnostics import (
    DIAGNOSTICS,
    DetectionDiagnostics,
    WindowTruth,
    format_diagnostics,
    score_auc,
)
from scene_model.tracking.predictions import WindowPrediction

A = [0.0, 0.0, 10.0, 10.0]
B = [20.0, 0.0, 30.0, 10.0]
B_SHIFTED = [22.0, 0.0, 32.0, 10.0]  # IoU with B: 80 / 120
ELSEWHERE = [50.0, 50.0, 60.0, 60.0]


def window(boxes: list[list[list[float]]], scores: list[list[float]], first: int = 1) -> WindowPrediction:
    frames = np.arange(first, first + len(boxes))
    return WindowPrediction("seq", frames, torch.tensor(boxes), torch.tensor(scores))


def truth(frames: list[dict[int, list[float]]]) -> WindowTruth:
    return WindowTruth(
        [torch.tensor(list(f.values())).reshape(-1, 4) for f in frames],
        [torch.tensor(list(f.keys()), dtype=torch.long) for f in frames],
    )


def test_matched_iou_recall_auc_and_counts_of_one_window():
    diag = DetectionDiagnostics(start_threshold=0.5)
    queries = [A, B_SHIFTED, ELSEWHERE]
    diag.add(window([queries] * 3, [[0.9, 0.8, 0.1]] * 3), truth([{1: A, 2: B}] * 3))
    values = diag.summary(boxes_written=6)
    assert values["matched_iou"] == pytest.approx((1.0 + 80 / 120) / 2)
    assert values["matched_iou_50"] == 1.0 and values["matched_iou_75"] == 0.5
    assert values["recall_50"] == 1.0 and values["recall_75"] == 0.5
    assert values["score_auc"] == 1.0  # every matched pair outscores every other (query, frame)
    assert values["queries_above_start"] == 2.0 and values["gt_per_frame"] == 2.0
    assert values["gt_boxes"] == 6 and values["boxes_written"] == 6 and values["max_score"] == pytest.approx(0.9)
    assert values["matched_score"] == pytest.approx(0.85) and values["unmatched_score"] == pytest.approx(0.1)
    assert tuple(values) == DIAGNOSTICS


def test_a_score_that_prefers_empty_queries_has_auc_zero():
    diag = DetectionDiagnostics()
    diag.add(window([[A, ELSEWHERE]] * 2, [[0.2, 0.9]] * 2), truth([{7: A}] * 2))
    assert diag.summary()["score_auc"] == 0.0


def test_matching_is_per_window_track_and_counts_only_visible_frames():
    """Query 0 sits on the object for two frames and then leaves; query 1 is close in every frame. Over
    the window query 1 wins the track (higher mean IoU), so frame 3 counts its IoU, not query 0's."""
    near = [1.0, 0.0, 11.0, 10.0]  # IoU with A: 90 / 110
    boxes = [[A, near], [A, near], [ELSEWHERE, near]]
    diag = DetectionDiagnostics()
    diag.add(window(boxes, [[0.9, 0.6]] * 3), truth([{1: A}, {1: A}, {1: A}]))
    values = diag.summary()
    assert values["matched_iou"] == pytest.approx(90 / 110)
    assert values["recall_75"] == 1.0  # the best query of each frame covers the object
    # An object absent from a frame: the matched query's score there counts as unmatched.
    diag = DetectionDiagnostics()
    diag.add(window([[A]] * 2, [[0.9], [0.7]]), truth([{1: A}, {}]))
    matched, unmatched = diag.scores()
    assert matched.tolist() == pytest.approx([0.9]) and unmatched.tolist() == pytest.approx([0.7])


def test_objects_beyond_the_queries_count_as_missed():
    diag = DetectionDiagnostics()
    diag.add(window([[A]], [[0.9]]), truth([{1: A, 2: B}]))
    values = diag.summary()
    assert values["matched_iou"] == pytest.approx(0.5) and values["recall_50"] == pytest.approx(0.5)


def test_merge_joins_shares_once_per_window_and_empty_inputs_give_nan_not_errors():
    first, second = DetectionDiagnostics(), DetectionDiagnostics()
    first.add(window([[A]], [[0.9]]), truth([{1: A}]))
    second.add(window([[ELSEWHERE]], [[0.2]], first=2), truth([{}]))
    second.add(window([[A]], [[0.9]]), truth([{1: A}]))  # a window a distributed sampler repeated
    merged = DetectionDiagnostics.merge([first, second])
    assert merged.frames == 2 and merged.summary()["gt_per_frame"] == 0.5
    empty = DetectionDiagnostics().summary(boxes_written=0)
    assert math.isnan(empty["matched_iou"]) and math.isnan(empty["score_auc"]) and empty["max_score"] == 0.0
    histograms = merged.histograms()
    assert sum(histograms["matched"]) == 1 and sum(histograms["unmatched"]) == 1 and len(histograms["bins"]) == 21


def test_a_query_that_never_overlaps_is_not_matched_and_non_finite_outputs_count_as_empty():
    diag = DetectionDiagnostics()
    diag.add(window([[ELSEWHERE]], [[0.9]]), truth([{1: A}]))
    values = diag.summary()
    assert values["matched_iou"] == 0.0 and math.isnan(values["matched_score"]) and values["unmatched_score"] == pytest.approx(0.9)
    diag = DetectionDiagnostics()
    nan = float("nan")
    diag.add(window([[[nan, nan, nan, nan], A]], [[nan, 0.8]]), truth([{1: A}]))
    values = diag.summary()
    assert values["matched_iou"] == 1.0 and values["score_auc"] == 1.0 and values["max_score"] == pytest.approx(0.8)


def test_score_auc_counts_ties_half():
    assert score_auc(np.array([0.5, 0.5]), np.array([0.5])) == 0.5
    assert score_auc(np.array([0.9, 0.3]), np.array([0.5])) == 0.5
    assert math.isnan(score_auc(np.array([]), np.array([0.1])))


def test_console_lines_name_the_threshold_and_the_counts():
    diag = DetectionDiagnostics(start_threshold=0.5)
    diag.add(window([[A]], [[0.3]]), truth([{1: A}]))
    text = format_diagnostics(diag.summary(boxes_written=0), 0.5)
    assert "boxes written 0 of 1 ground truth" in text and ">= 0.50" in text and "highest score 0.30" in text
    assert "matched IoU 1.000" in text

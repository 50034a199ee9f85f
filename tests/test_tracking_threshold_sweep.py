"""The threshold sweep: one prediction pass, every (start, keep) pair tracked and scored."""

from __future__ import annotations

import pytest

from scene_model.data import DancetrackDataModule
from scene_model.tools.oracle import oracle_predict
from scene_model.tools.threshold_sweep import sweep_thresholds, threshold_pairs
from scene_model.tracking.predictions import window_predictions


def test_pairs_keep_at_most_start():
    assert threshold_pairs([0.2, 0.5], [0.3, 0.1]) == [(0.5, 0.3), (0.5, 0.1), (0.2, 0.1)]


def test_a_timid_model_scores_zero_at_the_defaults_and_well_at_the_threshold_it_needs(tiny_root):
    dm = DancetrackDataModule(root=str(tiny_root), clip_len=3, eval_size=108, eval_batch_size=4, num_workers=0)
    split = dm.eval_split("val")
    oracle = oracle_predict()

    def timid(batch):  # ground truth with every score at 0.25: below the default start threshold (0.5)
        outputs = oracle(batch)
        return {**outputs, "exist_conf": outputs["exist_conf"] * 0.25}

    windows = [w for batch in dm.eval_windows(split) for w in window_predictions(timid(batch), batch)]
    exact = {"smooth_sigma": 0.0}  # ground truth boxes as they are
    rows = sweep_thresholds(windows, split.lengths, split.directory, [(0.5, 0.3), (0.2, 0.1)], exact)
    assert rows[0].metrics["HOTA"] == 0.0
    assert rows[1].metrics["HOTA"] == pytest.approx(100.0, abs=1e-3)

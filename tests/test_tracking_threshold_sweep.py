"""The threshold sweep: one prediction pass, every (start, keep) pair tracked and scored."""

from __future__ import annotations

import pytest

from scene_model.data import DancetrackDataModule
from scene_model.tracking import SequenceTracker
from scene_model.tracking.oracle import oracle_predict
from scene_model.tracking.threshold_sweep import cached_predict, sweep_thresholds, threshold_pairs


def test_pairs_keep_at_most_start():
    assert threshold_pairs([0.2, 0.5], [0.3, 0.1]) == [(0.5, 0.3), (0.5, 0.1), (0.2, 0.1)]


def test_a_timid_model_scores_zero_at_the_defaults_and_well_at_the_threshold_it_needs(tiny_root):
    dm = DancetrackDataModule(root=str(tiny_root), clip_len=3, eval_size=108, num_workers=0)
    records = dm.load_split("val")
    windows = list(SequenceTracker(batch_size=4).windows(records, dm.clip_len, dm.eval_transform))
    oracle = oracle_predict()
    calls = []

    def timid(batch):  # ground truth with every score at 0.25: below the default start threshold (0.5)
        calls.append(batch)
        outputs = oracle(batch)
        return {**outputs, "exist_conf": outputs["exist_conf"] * 0.25}

    predict = cached_predict(timid, windows)
    assert len(calls) == len(windows)
    rows = sweep_thresholds(predict, windows, {r.info.name: r.info.length for r in records}, tiny_root / "val",
                            [(0.5, 0.3), (0.2, 0.1)], {"batch_size": 4})
    assert len(calls) == len(windows)  # the model ran once, whatever the number of pairs
    assert rows[0].metrics["HOTA"] == 0.0
    assert rows[1].metrics["HOTA"] == pytest.approx(100.0, abs=1e-3)

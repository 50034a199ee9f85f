"""The threshold sweep: one prediction pass, every (start, keep) pair tracked and scored."""

from __future__ import annotations

import json

import pytest

from scene_model.association.iou import IouLink
from scene_model.errors import ConfigError
from scene_model.runtime.run import train
from scene_model.tools import threshold_sweep
from scene_model.tools.oracle import oracle_predict
from scene_model.tools.threshold_sweep import (
    SweepRow,
    main,
    mean_rows,
    sweep_thresholds,
    threshold_pairs,
    tracker_overrides,
)
from scene_model.tracking import TrackerOptions
from scene_model.tracking.predictions import window_predictions
from tests.builders import datamodule as make_datamodule
from tests.conftest import compose_config, tiny_overrides


def test_pairs_keep_at_most_start():
    assert threshold_pairs([0.2, 0.5], [0.3, 0.1]) == [(0.5, 0.3), (0.5, 0.1), (0.2, 0.1)]


def test_a_timid_model_scores_zero_at_the_defaults_and_well_at_the_threshold_it_needs(tiny_root):
    dm = make_datamodule(tiny_root, clip_len=3, eval_size=108, eval_batch_size=4)
    split = dm.eval_split("val")
    oracle = oracle_predict(20)

    def timid(batch):  # ground truth with every score at 0.25: below the default start threshold (0.5)
        outputs = oracle(batch)
        return {**outputs, "exist_conf": outputs["exist_conf"] * 0.25}

    windows = [w for batch in dm.eval_windows(split) for w in window_predictions(timid(batch), batch)]
    exact = TrackerOptions(smooth_sigma=0.0)  # ground truth boxes as they are
    rows = sweep_thresholds(lambda tracker: tracker.link(windows, list(split.lengths), IouLink()), split, [(0.5, 0.3), (0.2, 0.1)], exact)
    assert rows[0].metrics["HOTA"] == 0.0
    assert rows[1].metrics["HOTA"] == pytest.approx(100.0, abs=1e-3)


def test_rows_of_several_splits_are_averaged_pair_by_pair():
    first = [SweepRow(0.5, 0.1, {"HOTA": 60.0, "IDSW": 2.0}), SweepRow(0.3, 0.1, {"HOTA": 40.0, "IDSW": 4.0})]
    second = [SweepRow(0.5, 0.1, {"HOTA": 70.0, "IDSW": 1.0}), SweepRow(0.3, 0.1, {"HOTA": 50.0, "IDSW": 0.0})]
    rows = mean_rows([first, second])
    assert [(r.start_threshold, r.keep_threshold) for r in rows] == [(0.5, 0.1), (0.3, 0.1)]
    assert rows[0].metrics == {"HOTA": 65.0, "IDSW": 1.5} and rows[1].metrics == {"HOTA": 45.0, "IDSW": 2.0}


def test_tracker_options_are_cast_to_the_option_s_type_and_a_wrong_one_is_named():
    assert tracker_overrides(["max_lost=10", "height_scale=0", "interpolate=false"]) == {
        "max_lost": 10, "height_scale": 0.0, "interpolate": False,
    }
    for pair, match in [
        ("max_lost", "expected KEY=VALUE"),
        ("max_lots=3", "--tracker max_lots: not an eval.tracker option"),
        ("max_lost=1.5", "max_lost='1.5': expected a number"),
        ("interpolate=no", "expected true or false"),
        ("keep_threshold=0.2", "set it with --keep"),
    ]:
        with pytest.raises(ConfigError, match=match):
            tracker_overrides([pair])


@pytest.mark.slow
def test_a_checkpoint_is_scored_on_the_benchmark_s_val_splits_of_other_generator_seeds(tiny_root, tmp_path, capsys, monkeypatch):
    run = tmp_path / "fit"
    train(compose_config(tiny_overrides(tiny_root) + ["debug=fast", "eval.every_n_epochs=0"], run))
    scored = []  # (ground-truth folder, tracker options) of every split the tool scores

    def recording(track, split, pairs, options):
        scored.append((split.directory, options))
        return sweep_thresholds(track, split, pairs, options)

    monkeypatch.setattr(threshold_sweep, "sweep_thresholds", recording)
    data_dir = tmp_path / "benchmark"
    rows = main([str(run / "checkpoints" / "last.ckpt"), "--start", "0.0", "--keep", "0.0", "--device", "cpu",
                 "--tracker", "max_lost=5", "--seeds", "4", "5", "--data-dir", str(data_dir)])
    assert [gt_dir for gt_dir, _ in scored] == [data_dir / f"val_seed{seed}" / "val" for seed in (4, 5)]  # the benchmark's
    assert all(options.max_lost == 5 for _, options in scored)
    for seed in (4, 5):  # each made from the default config's generator with its own seed
        spec = json.loads((data_dir / f"val_seed{seed}" / "synthetic.json").read_text())
        assert spec["seed"] == seed and spec["num_frames"] == 100
    out = capsys.readouterr().out
    assert "mean over the val splits of generator seeds 4 5:" in out
    per_split = [float(v) for v in out.splitlines()[-2].split()[-2:]]
    assert rows[0].metrics["HOTA"] == pytest.approx(sum(per_split) / 2, abs=0.06)
    assert "eval.tracker.max_lost=5" in out.splitlines()[-1]

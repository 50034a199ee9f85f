"""The many-seed benchmark (scene_model.tools.benchmark): seed sets, crossings, the report, a real run."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from scene_model.tools import benchmark
from scene_model.tools.benchmark import SplitScore, crossings, report
from scene_model.tools.seed_splits import seed_list
from tests.builders import datamodule as make_datamodule
from tests.conftest import compose_config, tiny_overrides


def test_seed_sets_are_disjoint_and_seeds_are_named_once_in_order():
    assert seed_list(["choosing"]) == list(range(100, 112))
    assert not set(seed_list(["choosing"])) & set(seed_list(["reporting"]))
    assert seed_list(["7", "reporting", "7", "200"]) == [7, *range(200, 212)]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (left, top, width, height) boxes."""
    w = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_crossings_count_each_frame_and_pair_of_ground_truth_boxes_overlapping_past_the_threshold(tiny_root):
    split = make_datamodule(tiny_root, clip_len=3).eval_split("val")
    expected = 0
    for record in split.sequences:
        gt = record.gt
        for frame in np.unique(gt.frames):
            boxes = gt.boxes[gt.frames == frame]
            expected += sum(_iou(a, b) > 0.1 for a, b in itertools.combinations(boxes, 2))
    assert expected > 0  # the tiny split has dancers that overlap, so the count is tested
    assert crossings(split, iou=0.1) == expected
    assert crossings(split, iou=0.99) == 0


def test_report_gives_each_split_its_summary_and_the_spread_over_checkpoints():
    def scores(*hotas):
        return [SplitScore(seed, 2, 10 * seed, {"HOTA": h, "DetA": h, "AssA": h, "IDF1": h}) for seed, h in enumerate(hotas, 1)]

    text = report({"a.ckpt": scores(60.0, 70.0), "b.ckpt": scores(50.0, 50.0)})
    lines = text.splitlines()
    assert lines[2].split() == ["1", "2", "10", "60.0", "60.0", "60.0", "60.0"]
    assert lines[4].split()[:2] == ["mean", "65.0"]
    assert "over 2 checkpoints" in text
    over = lines[lines.index("over 2 checkpoints (each the mean of its splits):") + 1].split()
    assert over[:2] == ["mean", "57.5"]  # the mean of 65 and 50


def test_a_checkpoint_trained_with_extra_sets_is_scored_on_the_benchmark_splits_alone(tiny_root, tmp_path, capsys, monkeypatch):
    """The benchmark's whole path with the model's tracks replaced by the ground truth: every split is the
    one named, scored against its own ground truth with the tracker options given (the ground truth
    through the same tracker and scoring, outside the tool, gives the same figures), and the scores and
    the chart written."""
    from scene_model.association.iou import IouLink
    from scene_model.runtime.config_loader import ConfigLoader
    from scene_model.runtime.run import train
    from scene_model.runtime.trained import load_trained
    from scene_model.tools.compose import use_data_on_disk
    from scene_model.tools.oracle import oracle_predict
    from scene_model.tracking import SequenceTracker, TrackerOptions
    from scene_model.tracking.scoring import score_tracks
    from scene_model.tracking.sequence_tracker import TrackingSession

    run = tmp_path / "fit"
    train(compose_config(tiny_overrides(tiny_root) + ["debug=fast", "eval.every_n_epochs=0", "data.extra_train_sets=1"], run))
    oracle, step = oracle_predict(20), TrackingSession.step
    monkeypatch.setattr(TrackingSession, "step", lambda self, batch, outputs: step(self, batch, oracle(batch)))
    seen = []
    monkeypatch.setattr(TrackingSession, "__init__", lambda self, tracker, *a, init=TrackingSession.__init__: (seen.append(tracker.options), init(self, tracker, *a))[1])
    data_dir, out_json = tmp_path / "benchmark", tmp_path / "scores.json"
    scored = benchmark.main([str(run / "checkpoints" / "last.ckpt"), "--seeds", "4", "--data-dir", str(data_dir),
                             "--tracker", "max_lost=5", "smooth_sigma=0", "--json", str(out_json), "--device", "cpu"])
    assert sorted(p.name for p in data_dir.iterdir()) == ["val_seed4"]  # nothing else generated there
    assert sorted(p.name for p in (data_dir / "val_seed4").iterdir() if p.is_dir()) == ["val"]
    (split,) = next(iter(scored.values()))
    assert split.seed == 4 and split.sequences == 2
    assert {(o.max_lost, o.smooth_sigma) for o in seen} == {(5, 0.0)}
    monkeypatch.undo()  # the ground truth through the tracker and the scoring, as they are
    trained = load_trained(run / "checkpoints" / "last.ckpt")
    use_data_on_disk(trained.cfg, data_dir / "val_seed4")
    dm = ConfigLoader(trained.cfg).build_datamodule()
    truth = dm.eval_split("val")
    options = TrackerOptions.from_mapping(trained.cfg.eval.tracker).replace(max_lost=5, smooth_sigma=0.0)
    tracks = SequenceTracker(options).track(oracle_predict(20), dm.eval_windows(truth), list(truth.lengths), IouLink())
    expected = score_tracks(tracks, truth).combined
    assert split.metrics["HOTA"] == pytest.approx(expected["HOTA"], abs=1e-4) and split.metrics["HOTA"] > 85.0
    assert split.metrics["IDF1"] == pytest.approx(expected["IDF1"], abs=1e-4)
    saved = json.loads(out_json.read_text())
    assert saved["seeds"] == [4] and saved["tracker"] == {"max_lost": 5, "smooth_sigma": 0.0}
    assert out_json.with_suffix(".png").stat().st_size > 1000  # the chart beside the scores
    assert f"{split.seed:6d}{split.sequences:6d}{split.crossings:7d}" in capsys.readouterr().out

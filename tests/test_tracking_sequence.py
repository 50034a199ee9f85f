"""Sequence inference end to end: windows, pixel boxes, linking, result files, TrackEval."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import box_convert

from scene_model.association.iou import IouLink
from scene_model.data.dataset import ClipDataset
from scene_model.errors import ConfigError
from scene_model.tools.oracle import main as oracle_main
from scene_model.tools.oracle import oracle_predict
from scene_model.tracking import HEADLINE, SequenceTracker, TrackerOptions, evaluate_mot, write_results
from scene_model.tracking.diagnostics import DetectionDiagnostics, window_truth
from scene_model.tracking.predictions import window_predictions
from scene_model.tracking.sequence_tracker import check_overlap
from tests.builders import datamodule as make_datamodule

NUM_QUERIES = 20


def datamodule(root, clip_len=3, eval_size=108, **options):
    """At the default size frames are only enlarged, so the transform drops no (1-pixel) box."""
    return make_datamodule(root, clip_len=clip_len, eval_size=eval_size, max_size=400, **options)


def test_every_frame_is_in_a_window_and_windows_overlap(tiny_root):
    dm = datamodule(tiny_root, clip_len=4)
    records = dm.load_split("train")
    windows = ClipDataset.evaluation(records, 4, dm.eval_transform, 3, False)
    covered = {}
    for i in range(len(windows)):
        clip = windows[i]
        covered.setdefault(clip.sequence_id, []).append(clip.frame_indices.tolist())
    for record in records:
        spans = covered[record.info.name]
        assert sorted({f for span in spans for f in span}) == list(range(1, record.info.length + 1))
        assert all(len(set(a) & set(b)) >= 1 for a, b in zip(spans, spans[1:], strict=False))


def test_window_boxes_in_pixels_invert_resize_and_padding(tiny_root):
    """Targets of a batch mixing two frame sizes, read as predictions, come back as the gt pixels."""
    dm = datamodule(tiny_root, eval_size=64, val_stride=2, eval_batch_size=64)
    split = dm.eval_split("train")
    records = split.sequences
    assert len({(r.info.width, r.info.height) for r in records}) == 2
    by_name = {r.info.name: r for r in records}
    checked = 0
    for batch in dm.eval_windows(split):
        assert len(set(batch.sequence_ids)) == 2  # one window of each sequence: both frame sizes in every batch
        tracks = batch.tracks
        scores = torch.ones(tracks.boxes.shape[:3] + (1,))
        outputs = {"bbox_center": tracks.boxes[..., :2], "bbox_size": tracks.boxes[..., 2:], "exist_conf": scores}
        windows = window_predictions(outputs, batch)
        for b, name in enumerate(batch.sequence_ids):
            pixels = windows[b].boxes
            for t, frame in enumerate(batch.frame_indices[b].tolist()):
                if frame < 0:
                    continue
                assert windows[b].frames[t] == frame
                gt_xywh, gt_ids, _ = by_name[name].boxes_of(frame)
                kept = np.isin(gt_ids, batch.targets[b][t].track_ids.numpy())  # the transform drops sub-pixel boxes
                k = [tracks.track_ids[b].tolist().index(i) for i in gt_ids[kept]]
                expected = box_convert(torch.from_numpy(gt_xywh[kept]), "xywh", "xyxy")
                torch.testing.assert_close(pixels[t, k], expected, atol=1e-3, rtol=0)
                checked += int(kept.sum())
    assert checked > 100


def test_window_truth_lines_up_with_window_predictions_on_a_mixed_batch(tiny_root):
    """Ground truth read back as predictions: the diagnostics see the same frames and pixels on both
    sides (matched IoU and recall 1, every object matched) across two frame sizes and a short window."""
    dm = datamodule(tiny_root, eval_size=64, val_stride=2, eval_batch_size=64)
    split = dm.eval_split("train")
    diag = DetectionDiagnostics()
    for batch in dm.eval_windows(split):
        assert len(set(batch.sequence_ids)) == 2
        windows = window_predictions(oracle_predict(NUM_QUERIES, shuffle=True)(batch), batch)
        truths = window_truth(batch)
        assert [len(w.frames) for w in windows] == [len(t.boxes) for t in truths]
        diag.add_batch(windows, batch)
    values = diag.summary()
    assert values["matched_iou"] == pytest.approx(1.0, abs=1e-4) and values["recall_75"] == 1.0
    assert values["score_auc"] == 1.0 and values["gt_boxes"] > 100


@pytest.mark.parametrize(("stride", "shuffle"), [(2, False), (2, True), (1, True)])
def test_ground_truth_windows_track_to_hota_100(tiny_root, tmp_path, stride, shuffle):
    dm = datamodule(tiny_root, val_stride=stride, eval_batch_size=3)
    split = dm.eval_split("val")
    records = split.sequences
    tracker = SequenceTracker(TrackerOptions(interpolate=False, smooth_sigma=0.0))  # linking alone
    results = tracker.track(oracle_predict(NUM_QUERIES, shuffle=shuffle), dm.eval_windows(split), list(split.lengths), IouLink())
    for record in records:
        rows = results[record.info.name]
        assert len(rows) == len(record.gt)  # every gt box once: no frame written twice
        assert np.unique(rows[:, :2], axis=0).shape[0] == len(rows)
    combined = evaluate_mot(tiny_root / "val", write_results(tmp_path / "val", results)).combined
    for metric in ("HOTA", "DetA", "AssA", "MOTA", "IDF1"):
        assert combined[metric] == pytest.approx(100.0, abs=1e-3), (metric, combined)
    assert combined["IDSW"] == 0


def test_hota_falls_as_the_boxes_get_noisier(tiny_root, tmp_path):
    dm = datamodule(tiny_root, eval_batch_size=8)
    split = dm.eval_split("val")
    records = split.sequences
    tracker = SequenceTracker(TrackerOptions(smooth_sigma=0.0))
    windows = list(dm.eval_windows(split))
    hota = []
    for jitter in (0.0, 0.05, 0.15):
        results = tracker.track(oracle_predict(NUM_QUERIES, jitter=jitter), windows, [records[0].info.name], IouLink())
        hota.append(evaluate_mot(tiny_root / "val", write_results(tmp_path / "val", results)).combined["HOTA"])
    assert hota[0] == pytest.approx(100.0, abs=1e-3) and hota[0] > hota[1] > hota[2] > 20.0, hota


def test_a_blind_model_yields_empty_results_and_zero_hota(tiny_root, tmp_path):
    dm = datamodule(tiny_root, eval_batch_size=4)
    split = dm.eval_split("val")
    records = split.sequences
    tracker = SequenceTracker()
    oracle = oracle_predict(NUM_QUERIES)

    def blind(batch):
        outputs = oracle(batch)
        outputs["exist_conf"] = torch.zeros_like(outputs["exist_conf"])
        return outputs

    results = tracker.track(blind, dm.eval_windows(split), [records[0].info.name], IouLink())
    assert results[records[0].info.name].shape == (0, 7)
    combined = evaluate_mot(tiny_root / "val", write_results(tmp_path / "val", results)).combined
    assert combined["HOTA"] == 0.0 and combined["FN"] == len(records[0].gt)


@pytest.mark.parametrize(("clip_len", "stride", "match"), [(3, 3, "data.val_stride=3"), (3, 0, "val_stride=0"), (1, 1, "clip_len >= 2")])
def test_windows_must_overlap(clip_len, stride, match):
    with pytest.raises(ConfigError, match=match):
        check_overlap(clip_len, stride)


def test_default_evaluation_windows_share_one_frame(tiny_root):
    assert datamodule(tiny_root, clip_len=5).val_stride == 4


def oracle_hota(split, windows, tracker, out, **noise):
    results = tracker.track(oracle_predict(NUM_QUERIES, seed=3, **noise), windows, list(split.lengths), IouLink())
    return evaluate_mot(split.directory, write_results(out, results), sequences=split.lengths).combined


def test_interpolation_fills_the_frames_a_track_missed(tiny_root, tmp_path):
    """Ground truth with 30 % of the boxes missing: the linker keeps the ids through the gaps, and the
    interpolated frames bring back detections that an untouched copy of the same links lacks."""
    dm = datamodule(tiny_root, eval_batch_size=8)
    split = dm.eval_split("val")
    windows = list(dm.eval_windows(split))
    plain = oracle_hota(split, windows, SequenceTracker(TrackerOptions(interpolate=False, smooth_sigma=0.0)), tmp_path / "a", miss=0.3)
    filled = oracle_hota(split, windows, SequenceTracker(TrackerOptions(interpolate=True, smooth_sigma=0.0)), tmp_path / "b", miss=0.3)
    assert filled["DetRe"] > plain["DetRe"] + 5.0 and filled["HOTA"] > plain["HOTA"], (plain, filled)
    assert filled["IDs"] == plain["IDs"]


def test_smoothing_takes_out_frame_to_frame_jitter(tiny_root, tmp_path):
    dm = datamodule(tiny_root, eval_batch_size=8)
    split = dm.eval_split("val")
    windows = list(dm.eval_windows(split))
    rough = oracle_hota(split, windows, SequenceTracker(TrackerOptions(smooth_sigma=0.0)), tmp_path / "a", jitter=0.1)
    smooth = oracle_hota(split, windows, SequenceTracker(TrackerOptions(smooth_sigma=1.0)), tmp_path / "b", jitter=0.1)
    assert smooth["LocA"] > rough["LocA"] + 1.0 and smooth["HOTA"] > rough["HOTA"], (rough, smooth)


@pytest.mark.parametrize("sigma", [-1.0, float("nan"), float("inf")])
def test_smoothing_must_be_a_finite_non_negative_number(sigma):
    with pytest.raises(ConfigError, match="eval.tracker.smooth_sigma"):
        SequenceTracker(TrackerOptions(smooth_sigma=sigma))


def test_linking_takes_windows_in_any_order_and_once(tiny_root):
    """Under DDP the windows of a sequence come from several processes, padded with repeats."""
    dm = datamodule(tiny_root, eval_batch_size=2)
    split = dm.eval_split("val")
    oracle = oracle_predict(NUM_QUERIES, seed=1)
    windows = [w for batch in dm.eval_windows(split) for w in window_predictions(oracle(batch), batch)]
    tracker = SequenceTracker()
    ordered = tracker.link(windows, list(split.lengths), IouLink())
    shuffled = tracker.link(windows[::-1] + windows[:2], list(split.lengths), IouLink())
    for name in split.lengths:
        np.testing.assert_array_equal(ordered[name], shuffled[name])
        assert len(ordered[name]) == len(split.sequences[0].gt)


def test_thresholds_are_checked_once_and_name_the_config_key():
    with pytest.raises(ConfigError, match="eval.tracker.keep_threshold=0.5 is above start_threshold=0.3"):
        SequenceTracker(TrackerOptions(start_threshold=0.3, keep_threshold=0.5))


def test_oracle_command_prints_the_ceiling(tiny_root, capsys):
    oracle_main([str(tiny_root), "--data", "clip_len=3", "eval_size=108", "--jitter", "0", "0.1", "--smooth-sigma", "0"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["jitter", "miss", *HEADLINE]
    exact, noisy = (dict(zip(lines[0].split(), map(float, line.split()), strict=True)) for line in lines[1:])
    assert exact["HOTA"] == 100.0 and exact["IDSW"] == 0
    assert noisy["jitter"] == 0.1 and noisy["HOTA"] < 90.0

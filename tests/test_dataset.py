"""Windowed clips over the synthetic data set and the DataModule's loaders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scene_model.data.collate import collate_tracking
from scene_model.data.dataset import ClipDataset, SequenceRecord
from scene_model.data.mot_format import list_sequences, read_gt, read_seqinfo
from scene_model.errors import ConfigError, DataFormatError
from tests.builders import datamodule as make_datamodule
from tests.data_helpers import write_sequence


def test_synthetic_layout_is_dancetrack(tiny_root):
    assert (tiny_root / "train_seqmap.txt").read_text().splitlines()[0] == "name"
    seqs = list_sequences(tiny_root, "train")
    info = read_seqinfo(seqs[0])
    assert info.frame_path(1).is_file() and info.frame_path(info.length).is_file()
    assert info.width * 9 == info.height * 16
    gt = read_gt(info)
    assert len(gt) > 0 and gt.frames.min() >= 1 and gt.frames.max() <= info.length
    assert (gt.boxes[:, 2:] > 0).all()
    assert not any((seq / "gt").exists() for seq in list_sequences(tiny_root, "test"))


def test_loaders_yield_scene_batches(tiny_root):
    dm = make_datamodule(tiny_root, clip_len=3, batch_size=2, train_sizes=[64], eval_size=64)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch.frames.shape[:3] == (2, 3, 3) and batch.frames.dtype == torch.float32
    assert batch.frames.shape[-2] == 64
    for sample in batch.targets:
        for frame in sample:
            assert frame.center.shape == frame.size.shape == (len(frame), 2)
            assert ((frame.center >= 0) & (frame.center <= 1)).all()
    val = next(iter(dm.val_dataloader()))
    assert val.frame_indices[0].tolist() == [1, 2, 3]


def test_training_interval_is_random_within_bounds(tiny_root):
    dm = make_datamodule(tiny_root, clip_len=3, max_interval=4, train_sizes=[64])
    dm.setup("fit")
    dataset = dm.datasets["train"]
    torch.manual_seed(0)
    intervals = {int(np.diff(dataset.frame_numbers(0))[0]) for _ in range(50)}
    assert intervals == {1, 2, 3, 4}


def test_short_sequence_gives_padded_window(tiny_root):
    dm = make_datamodule(tiny_root, clip_len=40, batch_size=1, train_sizes=[64], eval_size=64)
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    assert batch.frames.shape[1] == 16 and not batch.padding_mask.any()


def test_validation_windows_cover_every_frame(tiny_root):
    dm = make_datamodule(tiny_root, clip_len=3, val_stride=3, eval_size=64)
    dm.setup("validate")
    dataset = dm.datasets["val"]
    frames = [dataset.frame_numbers(i) for i in range(len(dataset))]
    assert all(np.array_equal(np.diff(f), [1, 1]) for f in frames)
    assert sorted({int(n) for f in frames for n in f}) == list(range(1, 17))
    assert frames[-1].tolist() == [14, 15, 16]


def test_test_split_without_gt_gives_clips_without_boxes(tiny_root):
    dm = make_datamodule(tiny_root, clip_len=3, test_split="test", eval_size=64)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch.frames.shape[1] == 3 and all(len(f) == 0 for sample in batch.targets for f in sample)
    assert batch.tracks.num_tracks == 0


def test_train_split_without_gt_is_an_error(tmp_path):
    write_sequence(tmp_path, gt=None)
    dm = make_datamodule(tmp_path)
    with pytest.raises(DataFormatError, match=r"missing .*seq1/gt/gt\.txt"):
        dm.setup("fit")


def test_sequences_of_other_sizes_and_lengths_share_a_padded_batch(tmp_path):
    write_sequence(tmp_path, "val", "a", length=2, width=100, height=50, rectangle=(10, 10, 20, 20),
                   gt="1,3,10,10,20,20,1,1,1\n2,3,12,10,20,20,1,1,1\n")
    write_sequence(tmp_path, "val", "b", length=5, width=80, height=60, frames=True, gt="5,8,0,0,40,30,1,1,1\n")
    dm = make_datamodule(tmp_path, clip_len=4, eval_batch_size=2, eval_size=30)
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    assert batch.sequence_ids == ["a", "b"]
    assert batch.padding_mask.tolist() == [[False, False, True, True], [False] * 4]
    assert batch.image_sizes.tolist() == [[30, 60], [30, 40]]
    assert batch.orig_sizes.tolist() == [[50, 100], [60, 80]]
    assert batch.frames.shape == (2, 4, 3, 30, 60)
    windows = [dm.datasets["val"].frame_numbers(i).tolist() for i in range(len(dm.datasets["val"]))]
    assert windows == [[1, 2], [1, 2, 3, 4], [2, 3, 4, 5]]
    # a's 100x50 frames become 60x30, filling the canvas: box (10, 10, 20, 20) -> (6, 6, 12, 12) pixels.
    first = batch.targets[0][0]
    assert first.track_ids.tolist() == [3]
    assert torch.allclose(torch.cat([first.center, first.size], 1), torch.tensor([[0.2, 0.4, 0.2, 0.4]]), atol=1e-6)
    # b's 80x60 frames become 40x30 in the left of a 60x30 canvas: box (0, 0, 40, 30) -> (0, 0, 20, 15).
    last = collate_tracking([dm.datasets["val"][2], dm.datasets["val"][0]]).targets[0][3]
    assert last.frame_index == 5 and last.track_ids.tolist() == [8]
    assert torch.allclose(torch.cat([last.center, last.size], 1), torch.tensor([[10 / 60, 0.25, 20 / 60, 0.5]]), atol=1e-6)


def test_class_ids_map_to_labels(tmp_path):
    seq = write_sequence(tmp_path, gt="1,1,1,1,5,5,1,7,1\n1,2,1,1,5,5,1,3,1\n1,3,1,1,5,5,1,4,1\n")
    record = SequenceRecord.load(seq, True, (7, 3))
    boxes, ids, labels = record.boxes_of(1)
    assert ids.tolist() == [1, 2] and labels.tolist() == [0, 1]


def test_a_training_chain_is_windows_that_share_their_last_and_first_frame(tiny_root):
    dm = make_datamodule(tiny_root, clip_len=3, chain_len=3, max_interval=1, train_stride=1, train_sizes=[64], batch_size=2)
    dm.setup("fit")
    dataset = dm.datasets["train"]
    assert dataset.frame_numbers(0).tolist() == [1, 2, 3, 4, 5, 6, 7]
    batch = next(iter(dm.train_dataloader()))
    assert batch.window_len == 3 and batch.window_starts() == [0, 2, 4]
    window = batch.window(2)
    assert window.frames.shape[1] == 3 and window.window_len is None
    assert torch.equal(window.frames, batch.frames[:, 2:5])
    assert window.frame_indices[:, 0].tolist() == batch.frame_indices[:, 2].tolist()
    assert torch.equal(window.tracks.present, batch.tracks.present[:, 2:5])
    assert torch.equal(window.tracks.track_ids, batch.tracks.track_ids)  # the chain's tracks keep their index
    with pytest.raises(ValueError, match="chains of windows"):
        ClipDataset(dataset.sequences, 3, dm.eval_transform, False, max_interval=1, stride=1, skip_bad_frames=False, chain_len=2)


def test_round_batches_hold_different_sequences_and_keep_each_in_order():
    from scene_model.data.datamodule import round_batches

    seq_index = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
    batches = round_batches(seq_index, batch_size=2)
    assert batches == [[0, 4], [1, 5], [2, 6], [3, 7], [8]]
    for batch in batches:
        assert len({int(seq_index[i]) for i in batch}) == len(batch)


def test_other_generator_seeds_add_training_sequences_and_leave_val_alone(tmp_path):
    from scene_model.data.synthetic import SyntheticSpec, ensure_synthetic
    from tests.builders import synthetic_spec

    spec = synthetic_spec(num_train=1, num_val=1, num_test=0, num_frames=8, sizes=[[96, 54]], seed=5)
    dm = make_datamodule(tmp_path / "set", synthetic=spec, extra_train_sets=2, clip_len=3, train_sizes=[32], eval_size=32)
    assert dm.extra_train_seeds() == [6001, 6002]
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.datasets["train"].sequences) == 3 and len(dm.datasets["val"].sequences) == 1
    extra = tmp_path / "set_train_seed6001"
    assert sorted(p.name for p in extra.iterdir()) == ["synthetic.json", "train", "train_seqmap.txt"]  # no val, no test
    # The extra train sequence is the one the whole data set of seed 6001 holds.
    whole = ensure_synthetic(tmp_path / "whole", SyntheticSpec.from_dict({**spec, "seed": 6001}))
    assert (whole / "train" / "synth0001" / "gt" / "gt.txt").read_text() == (extra / "train" / "synth0001" / "gt" / "gt.txt").read_text()
    real = make_datamodule(tmp_path / "set", extra_train_sets=1)  # built: an evaluation reads no extra sets
    with pytest.raises(ConfigError, match=r"^data.extra_train_sets: 1 adds .* which needs data.synthetic"):
        real.setup("fit")


def test_training_windows_start_anywhere_in_their_stride(tiny_root):
    dm = make_datamodule(tiny_root, clip_len=3, max_interval=1, train_stride=4, train_sizes=[64])
    dm.setup("fit")
    torch.manual_seed(0)
    starts = {int(dm.datasets["train"].frame_numbers(1)[0]) for _ in range(60)}
    assert starts == {5, 6, 7, 8}

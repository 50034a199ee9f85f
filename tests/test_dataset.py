"""Windowed clips over the synthetic data set and the DataModule's loaders."""

from __future__ import annotations

import numpy as np
import torch

from scene_model.data.datamodule import DancetrackDataModule
from scene_model.data.mot_format import list_sequences, read_gt, read_seqinfo


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
    dm = DancetrackDataModule(str(tiny_root), clip_len=3, batch_size=2, num_workers=0, train_sizes=[64], eval_size=64)
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
    dm = DancetrackDataModule(str(tiny_root), clip_len=3, max_interval=4, num_workers=0, train_sizes=[64])
    dm.setup("fit")
    dataset = dm.datasets["train"]
    torch.manual_seed(0)
    intervals = {int(np.diff(dataset.frame_numbers(0))[0]) for _ in range(50)}
    assert intervals == {1, 2, 3, 4}


def test_short_sequence_gives_padded_window(tiny_root):
    dm = DancetrackDataModule(str(tiny_root), clip_len=40, batch_size=1, num_workers=0, train_sizes=[64], eval_size=64)
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    assert batch.frames.shape[1] == 16 and not batch.padding_mask.any()

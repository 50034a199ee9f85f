"""collate_tracking: shapes, time and space padding, dense track targets."""

from __future__ import annotations

import torch

from scene_model.data.collate import collate_tracking
from scene_model.data.dataset import Clip
from scene_model.data.types import TargetFrame, TrackTargets


def make_clip(length: int, height: int, width: int, ids_per_frame: list[list[int]], name: str = "s") -> Clip:
    targets = []
    for t, ids in enumerate(ids_per_frame):
        n = len(ids)
        targets.append(
            TargetFrame(
                center=torch.full((n, 2), 0.5),
                size=torch.full((n, 2), 0.2),
                track_ids=torch.tensor(ids, dtype=torch.long),
                labels=torch.zeros(n, dtype=torch.long),
                frame_index=t + 1,
            )
        )
    return Clip(torch.randn(length, 3, height, width), targets, name, torch.arange(1, length + 1), (width * 4, height * 4))


def test_pads_time_and_space_and_marks_padding():
    short = make_clip(2, 32, 48, [[7], [7, 9]], "a")
    long = make_clip(4, 40, 40, [[1], [], [1, 2], [2]], "b")
    batch = collate_tracking([short, long])
    assert batch.frames.shape == (2, 4, 3, 40, 48)
    assert batch.padding_mask.tolist() == [[False, False, True, True], [False] * 4]
    assert batch.sequence_ids == ["a", "b"]
    assert len(batch.targets) == 2 and all(len(sample) == 4 for sample in batch.targets)
    assert batch.targets[0][2].frame_index == -1 and len(batch.targets[0][2]) == 0
    assert torch.equal(batch.frames[0, :2, :, :32, :48], short.frames)
    assert batch.frames[0, 2:].abs().sum() == 0
    assert batch.frame_indices[0].tolist() == [1, 2, -1, -1]
    # The 48x32 frame fills 48/48 x 32/40 of the canvas: its boxes shrink in y only.
    assert torch.allclose(batch.targets[0][0].center, torch.tensor([[0.5, 0.5 * 32 / 40]]))
    assert torch.allclose(batch.targets[1][0].center, torch.tensor([[0.5 * 40 / 48, 0.5]]))
    assert batch.image_sizes.tolist() == [[32, 48], [40, 40]]


def test_track_targets_gather_each_id_across_frames():
    batch = collate_tracking([make_clip(3, 8, 8, [[5], [9, 5], [9]]), make_clip(2, 8, 8, [[], [4]])])
    tracks = batch.tracks
    assert isinstance(tracks, TrackTargets)
    assert tracks.boxes.shape == (2, 3, 2, 4)
    assert tracks.track_ids.tolist() == [[5, 9], [4, -1]]
    assert tracks.valid.tolist() == [[True, True], [True, False]]
    assert tracks.present[0].tolist() == [[True, False], [True, True], [False, True]]
    assert tracks.present[1].tolist() == [[False, False], [True, False], [False, False]]
    assert torch.allclose(tracks.boxes[0, 1, 0], torch.tensor([0.5, 0.5, 0.2, 0.2]))


def test_batch_moves_what_the_model_reads():
    batch = collate_tracking([make_clip(2, 8, 8, [[1], [1]])]).to("cpu")
    assert batch.frames.device.type == "cpu" and batch.tracks.boxes.device.type == "cpu"

"""Clip transforms: one random draw per clip, boxes that follow the frames, multi-scale sizes."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from scene_model.data.decode import FrameGeometry
from scene_model.data.transforms import ClipTransform, resized_size
from tests.builders import default_node


def train_transform(**changes) -> ClipTransform:
    """The training transform of the default data config with ``changes``."""
    data = default_node("data")
    values = dict(short_sides=data["train_sizes"], max_size=data["max_size"], hflip=data["hflip"], crop=data["crop"],
                  crop_scale=data["crop_scale"], color_jitter=data["color_jitter"], hue=data["hue"], min_box_size=data["min_box_size"])
    return ClipTransform(True, **{**values, **changes})


@pytest.mark.parametrize(("height", "width", "short", "max_size"), [(1080, 1920, 540, None), (1080, 1920, 800, 1333),
                                                                   (216, 384, 128, 400), (101, 57, 64, 90), (50, 50, 20, None)])
def test_resized_size_follows_torchvision(height, width, short, max_size):
    resized = v2.Resize(size=short, max_size=max_size, antialias=True)(torch.zeros(1, height, width))
    assert resized_size(height, width, short, max_size) == tuple(resized.shape[-2:])


def test_multi_scale_draws_sizes_from_the_list_within_max_size():
    transform = train_transform(short_sides=(60, 80, 100), max_size=160, hflip=0.0)
    torch.manual_seed(0)
    sizes = {transform.plan(320, 180).out_size for _ in range(60)}
    assert sizes == {(60, 106), (80, 142), (90, 160)}  # 100 would make the long side 177 > 160
    assert ClipTransform.evaluation(60, 160, 1.0).plan(320, 180).out_size == (60, 106)


def test_one_random_draw_for_every_frame_of_a_clip():
    transform = train_transform(short_sides=(32,), hflip=0.5, color_jitter=0.4, hue=0.1, crop=1.0)
    frame = torch.randint(0, 256, (3, 32, 48), dtype=torch.uint8)
    boxes = torch.tensor([[4.0, 2.0, 10.0, 20.0]]).repeat(5, 1)
    for seed in range(6):
        torch.manual_seed(seed)
        geometry = FrameGeometry.full(48, 32, (32, 48))
        out, per_frame, _ = transform(frame.expand(5, -1, -1, -1), boxes, [1] * 5, geometry, (32, 48))
        assert all(torch.equal(out[0], out[t]) for t in range(1, 5))
        assert all(torch.equal(per_frame[0], per_frame[t]) for t in range(1, 5))


def test_crop_keeps_ids_of_boxes_inside_and_drops_boxes_that_leave():
    transform = ClipTransform.evaluation(50, None, 1.0)
    # Crop the left half of a 200x100 frame, then scale it by 1/2 to 50x50.
    geometry = FrameGeometry(crop=(0, 0, 100, 100), out_size=(50, 50))
    boxes = torch.tensor([[10.0, 10.0, 20.0, 40.0], [150.0, 10.0, 20.0, 20.0], [90.0, 50.0, 40.0, 20.0]])
    frames = torch.zeros(2, 3, 50, 50, dtype=torch.uint8)
    _, per_frame, kept = transform(frames, boxes, [2, 1], geometry, (100, 200))
    assert kept[0].tolist() == [0] and kept[1].tolist() == [0]  # the box at x=150 left the crop
    assert torch.allclose(per_frame[0], torch.tensor([[0.2, 0.3, 0.2, 0.4]]))
    # The box straddling the crop's edge is clipped to it: x 90..100 -> 45..50 of 50.
    assert torch.allclose(per_frame[1], torch.tensor([[0.95, 0.6, 0.1, 0.2]]))


def test_random_crop_stays_inside_the_frame_and_in_scale():
    transform = train_transform(short_sides=(64,), crop=1.0, crop_scale=(0.5, 0.8))
    torch.manual_seed(1)
    for _ in range(50):
        left, top, w, h = transform.plan(300, 200).crop
        assert 150 <= w <= 240 and 100 <= h <= 160
        assert 0 <= left <= 300 - w and 0 <= top <= 200 - h


def test_frames_of_another_size_than_planned_are_refused():
    transform = ClipTransform.evaluation(50, 1333, 1.0)
    with pytest.raises(ValueError, match="geometry"):
        transform(torch.zeros(1, 3, 40, 40, dtype=torch.uint8), torch.zeros(0, 4), [0], FrameGeometry.full(80, 80, (50, 50)), (80, 80))

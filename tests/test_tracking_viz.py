"""The track picture: one colour per track id across frames."""

from __future__ import annotations

import torch
from PIL import ImageColor

from scene_model.tracking.drawing import render_tracks, track_colour


def colour_at(grid, y, x):
    return tuple(grid[:, y, x].tolist())


def test_a_track_keeps_its_colour_across_frames_and_tracks_differ():
    images = [torch.zeros(3, 40, 60, dtype=torch.uint8) for _ in range(2)]
    boxes = [torch.tensor([[5.0, 5.0, 20.0, 30.0], [30.0, 5.0, 50.0, 30.0]]), torch.tensor([[35.0, 8.0, 55.0, 35.0]])]
    ids = [torch.tensor([3, 4]), torch.tensor([3])]
    grid = render_tracks(images, boxes, ids, max_height=360)
    assert grid.shape == (3, 40 + 4, 2 * 60 + 6)
    left_edge_of = lambda frame, x, y: colour_at(grid, 2 + y, 2 + frame * 62 + x)  # noqa: E731
    red, blue = ImageColor.getrgb(track_colour(3)), ImageColor.getrgb(track_colour(4))
    assert red != blue
    assert left_edge_of(0, 5, 20) == red and left_edge_of(0, 30, 20) == blue
    assert left_edge_of(1, 35, 20) == red  # id 3 moved, same colour
    assert left_edge_of(1, 5, 20) == (0, 0, 0)


def test_tall_frames_are_shrunk_with_their_boxes():
    images = [torch.zeros(3, 720, 1280, dtype=torch.uint8)]
    grid = render_tracks(images, [torch.tensor([[100.0, 100.0, 300.0, 500.0]])], [torch.tensor([1])], max_height=360)
    assert grid.shape == (3, 360, 640)  # a single frame: no grid padding
    assert colour_at(grid, 150, 50) == ImageColor.getrgb(track_colour(1))

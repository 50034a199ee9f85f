"""Encoder proposals and query selection (two-stage), and the interval-aware time encoding."""

from __future__ import annotations

import torch

from scene_model.models.proposals import cell_anchors, select_queries
from tests.builders import run_model
from tests.test_model import small_model as tiny_model


def test_cell_anchors_centre_on_cells_and_double_per_level():
    anchors = cell_anchors([(2, 4), (1, 2)], 0.05, torch.device("cpu"))
    assert anchors.shape == (2 * 4 + 1 * 2, 4)
    assert torch.allclose(anchors[0], torch.tensor([0.125, 0.25, 0.05, 0.05]))
    assert torch.allclose(anchors[8], torch.tensor([0.25, 0.5, 0.1, 0.1]))


def test_selection_takes_each_cell_once_with_its_best_frames_box():
    logits = torch.full((1, 3, 5, 1), -5.0)
    logits[0, 0, 2] = 3.0  # cell 2 strong in frame 0 ...
    logits[0, 2, 2] = 4.0  # ... and stronger in frame 2: still one query, from frame 2's box
    logits[0, 0, 3] = 2.0
    logits[0, 1, 0] = 9.0  # cell 0 only in a padded frame: does not count
    logits[0, 0, 4] = 8.0  # cell 4 outside the image: never chosen
    boxes = torch.rand(1, 3, 5, 4)
    padding = torch.tensor([[False, True, False]])
    cells = torch.tensor([[False, False, False, False, True]])
    chosen = select_queries(logits, boxes, 2, padding, cells)
    assert chosen.shape == (1, 3, 2, 4)
    assert torch.equal(chosen[0, :, 0], boxes[0, 2, 2].expand(3, 4))  # the same box in every frame
    assert torch.equal(chosen[0, :, 1], boxes[0, 0, 3].expand(3, 4))


def test_two_stage_outputs_proposals_and_starts_queries_from_them():
    model = tiny_model().eval()
    frames = torch.randn(2, 3, 3, 64, 96)
    with torch.no_grad():
        out = run_model(model, frames)
    cells = 4 * 6  # stride 16
    assert out["enc"]["cls_logits"].shape == (2, 3, cells, 2)
    assert out["enc"]["bbox_center"].shape == (2, 3, cells, 2) and out["enc"]["bbox_size"].shape == (2, 3, cells, 2)
    boxes = torch.cat([out["enc"]["bbox_center"], out["enc"]["bbox_size"]], -1)
    assert ((boxes > 0) & (boxes < 1)).all()


def test_time_encoding_follows_the_frame_interval():
    model = tiny_model().eval()
    frames = torch.randn(1, 3, 3, 64, 96)
    with torch.no_grad():
        consecutive = run_model(model, frames, frame_indices=torch.tensor([[5, 6, 7]]))
        default = run_model(model, frames)
        spaced = run_model(model, frames, frame_indices=torch.tensor([[5, 8, 11]]))
    assert torch.allclose(consecutive["exist_logit"], default["exist_logit"])
    assert not torch.allclose(consecutive["exist_logit"], spaced["exist_logit"])

"""The validation picture: predicted boxes drawn on de-normalised frames."""

from __future__ import annotations

import torch

from scene_model.models.head import prediction_scores
from scene_model.tracking.drawing import render_clip


def test_render_clip_draws_confident_boxes_only():
    frames = torch.zeros(3, 3, 40, 60)  # normalised zeros = the mean colour
    boxes = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.2, 0.2, 0.1, 0.1]]).expand(3, 2, 4)
    scores = torch.tensor([0.9, 0.1]).expand(3, 2)
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    grid = render_clip(frames, boxes, scores, mean, std, score_threshold=0.5)
    blank = render_clip(frames, boxes, torch.zeros(3, 2), mean, std, score_threshold=0.5)
    assert grid.dtype == torch.uint8 and grid.shape[0] == 3
    assert grid.shape[1] == 40 + 4 and grid.shape[2] == 3 * 60 + 4 * 2
    changed = (grid != blank).any(0)
    assert changed.any()
    # The low-score box around (12, 8) px is not drawn: that area is unchanged.
    assert not changed[2 + 6 : 2 + 10, 2 + 10 : 2 + 14].any()


def test_the_box_score_is_the_existence_probability_whatever_the_class_head_says():
    exist = torch.tensor([[[0.5], [0.9]]])
    sure = {"exist_conf": exist, "cls_logits": torch.tensor([[[100.0, 0.0], [100.0, 0.0]]])}
    unsure = {"exist_conf": exist, "cls_logits": torch.tensor([[[-100.0, -100.0], [-100.0, -100.0]]])}
    assert torch.equal(prediction_scores(sure), torch.tensor([[0.5, 0.9]]))
    assert torch.equal(prediction_scores(unsure), prediction_scores(sure))  # the class probability is not multiplied in

"""Box pooling: RoIAlign of each query's box per frame, feeding the decoder layers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_convert, roi_align

from scene_model.errors import ConfigError
from scene_model.models.box_pooling import BoxPooling, box_grid
from tests.builders import run_model, tiny_model

TINY = dict(num_decoder_layers=2, num_queries=5)


def test_grid_equals_torchvision_roi_align_with_one_sample_per_bin():
    torch.manual_seed(0)
    features = torch.randn(2, 3, 16, 28)
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.4], [0.3, 0.6, 0.1, 0.3], [0.2, 0.3, 0.3, 0.5]]]).repeat(2, 1, 1)
    boxes[1] = boxes[1].flip(0)
    ours = F.grid_sample(features, box_grid(boxes, 4), align_corners=False).unflatten(2, (3, 4))  # [N,C,K,4,4]
    corners = box_convert(boxes, "cxcywh", "xyxy") * torch.tensor([28.0, 16.0, 28.0, 16.0])
    theirs = roi_align(features, list(corners.unbind(0)), 4, spatial_scale=1.0, sampling_ratio=1, aligned=True)
    assert torch.allclose(ours.permute(0, 2, 1, 3, 4).flatten(0, 1), theirs, atol=1e-5)


def test_a_query_sees_the_features_inside_its_box_only():
    torch.manual_seed(0)
    pool = BoxPooling(8, 3).eval()
    tgt = torch.zeros(1, 1, 2, 8)
    boxes = torch.tensor([[[[0.25, 0.5, 0.2, 0.4], [0.75, 0.5, 0.2, 0.4]]]])  # left and right half
    features = torch.randn(1, 8, 16, 32)
    changed = features.clone()
    changed[..., 16:] += 5.0  # only the right half
    a, b = pool(tgt, boxes, features), pool(tgt, boxes, changed)
    assert torch.allclose(a[:, :, 0], b[:, :, 0])
    assert not torch.allclose(a[:, :, 1], b[:, :, 1])


def test_model_with_box_pooling_trains_the_fine_stage():
    torch.manual_seed(0)
    model = tiny_model(num_classes=1, box_pool=4, box_stage=2, **TINY)
    out = run_model(model, torch.randn(2, 3, 3, 64, 96), torch.tensor([[False, False, True], [False, False, False]]))
    assert out["bbox_center"].shape == (2, 3, 5, 2)
    (out["bbox_size"].sum() + out["exist_logit"].sum()).backward()
    assert model.box_proj[0].weight.grad.abs().sum() > 0
    assert all(pool.project.weight.grad.abs().sum() > 0 for pool in model.box_pooling)


def test_box_pooling_off_builds_nothing_for_it():
    model = tiny_model(num_classes=1, box_pool=0, **TINY)
    assert model.box_pooling is None and model.box_proj is None


def test_a_box_stage_beyond_the_backbone_names_its_key():
    with pytest.raises(ConfigError, match="model.box_stage=4"):
        tiny_model(num_classes=1, box_pool=4, box_stage=4, **TINY)


def test_each_query_pools_its_own_frame_of_its_own_sample():
    """[B,T,N] boxes against [B*T] feature maps: the same as pooling every frame on its own."""
    torch.manual_seed(0)
    pool = BoxPooling(6, 3).eval()
    tgt = torch.randn(2, 3, 4, 6)
    boxes = torch.cat([torch.rand(2, 3, 4, 2) * 0.5 + 0.25, torch.rand(2, 3, 4, 2) * 0.3 + 0.1], dim=-1)
    features = torch.randn(6, 6, 10, 14)
    together = pool(tgt, boxes, features)
    for b in range(2):
        for t in range(3):
            alone = pool(tgt[b : b + 1, t : t + 1], boxes[b : b + 1, t : t + 1], features[b * 3 + t : b * 3 + t + 1])
            assert torch.allclose(together[b, t], alone[0, 0], atol=1e-6), (b, t)

"""The DanceTrack recipe's pretrained path: ImageNet weights by default, a local weights file loads,
BatchNorm frozen, and the backbone's learning rate scaled by lr_mult."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torchvision.ops import FrozenBatchNorm2d

from scene_model.runtime.config_loader import ConfigLoader
from tests.conftest import compose_config


def test_dancetrack_recipe_defaults_to_imagenet_weights(tmp_path):
    cfg = compose_config(["experiment=dancetrack_r50", "data.root=/tmp/anywhere"], tmp_path)
    assert cfg.model.backbone.weights.startswith("IMAGENET1K")
    assert cfg.model.backbone.norm == "frozen_bn" and cfg.model.backbone.lr_mult < 1


def test_local_weights_file_frozen_bn_and_lr_mult(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.resnet50(weights=None)
    with torch.no_grad():
        reference.bn1.running_mean.uniform_(-1, 1)  # statistics a fresh model would not have
    weights = tmp_path / "resnet50_imagenet.pth"
    torch.save(reference.state_dict(), weights)
    cfg = compose_config(
        ["experiment=dancetrack_r50", "data.root=/tmp/anywhere", f"model.backbone.weights={weights}",
         "model.d_model=32", "model.num_encoder_layers=1", "model.num_decoder_layers=1", "model.dim_feedforward=64"],
        tmp_path,
    )
    module = ConfigLoader(cfg).build_lit_module()
    body = module.model.backbone.body
    assert torch.equal(body[0].weight, reference.conv1.weight)
    assert isinstance(body[1], FrozenBatchNorm2d) and torch.equal(body[1].running_mean, reference.bn1.running_mean)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in module.model.backbone.modules())

    groups = {g["name"]: g for g in module.parameter_groups()}
    assert groups["backbone"]["lr"] == pytest.approx(cfg.optimizer.lr * cfg.model.backbone.lr_mult)
    optimizer = module.optimizer_factory(params=module.parameter_groups())
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs["backbone"] == pytest.approx(0.1 * lrs["transformer"])

    # Frozen statistics stay put through a training-mode forward.
    before = body[1].running_mean.clone()
    module.train()
    module.model.backbone.stages(torch.randn(2, 3, 64, 64), module.model.backbone.levels)
    assert torch.equal(body[1].running_mean, before)

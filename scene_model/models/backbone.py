"""torchvision ResNet trunks as feature extractors."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn
from torchvision.ops import FrozenBatchNorm2d

from scene_model.errors import CheckpointError, ConfigError

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")
NORMS = {"frozen_bn": FrozenBatchNorm2d, "batch_norm": nn.BatchNorm2d}


def load_backbone_weights(net: nn.Module, name: str, weights: str) -> None:
    """Load ``weights``: a local file (a state dict) or a torchvision weights name such as IMAGENET1K_V2."""
    path = Path(weights).expanduser()
    if path.suffix in (".pth", ".pt", ".ckpt") or path.exists():
        if not path.is_file():
            raise CheckpointError(f"backbone weights file {path} does not exist (model.backbone.weights)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        missing, unexpected = net.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing:
            raise CheckpointError(f"{path} does not fit {name}: missing {len(missing)} keys, e.g. {missing[:3]}")
        return
    enum = torchvision.models.get_model_weights(name)
    try:
        entry = enum[weights]
    except KeyError:
        choices = ", ".join(member.name for member in enum)
        raise ConfigError(f"model.backbone.weights={weights!r} is neither a file nor one of {choices}") from None
    try:
        state = entry.get_state_dict(progress=False, check_hash=True)
    except Exception as err:  # noqa: BLE001 - any download/cache failure gets the same advice
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        raise CheckpointError(
            f"cannot load {name} weights {weights} ({type(err).__name__}: {err}). Offline? Put the file "
            f"{Path(entry.url).name} in {cache}, or set model.backbone.weights to a local .pth file, "
            "or model.backbone.weights=null to train from scratch"
        ) from None
    net.load_state_dict(state)


class Backbone(nn.Module):
    """A ResNet cut after ``layer4`` (stride 32) or ``layer3`` (stride 16, ``out_layer=3``).

    ``frozen_bn`` (the DETR choice for pretrained weights) keeps batch statistics fixed;
    ``batch_norm`` trains them, which is what training from scratch needs.
    """

    def __init__(self, name: str = "resnet18", weights: str | None = None, norm: str = "frozen_bn", out_layer: int = 4):
        super().__init__()
        if name not in RESNETS:
            raise ConfigError(f"model.backbone.name={name!r}; expected one of {', '.join(RESNETS)}")
        if norm not in NORMS:
            raise ConfigError(f"model.backbone.norm={norm!r}; expected one of {', '.join(NORMS)}")
        if out_layer not in (3, 4):
            raise ConfigError(f"model.backbone.out_layer={out_layer}; expected 3 or 4")
        net = getattr(torchvision.models, name)(weights=None, norm_layer=NORMS[norm])
        if weights:
            load_backbone_weights(net, name, weights)
        layers = [net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4]
        self.body = nn.Sequential(*layers[: 4 + out_layer])
        last_block = getattr(net, f"layer{out_layer}")[-1]
        self.num_channels = (last_block.conv3 if hasattr(last_block, "conv3") else last_block.conv2).out_channels
        self.stride = 2 ** (out_layer + 1)

    def forward(self, images: Tensor) -> Tensor:
        """images float[N, 3, H, W] -> features float[N, C, H/stride, W/stride]."""
        return self.body(images)

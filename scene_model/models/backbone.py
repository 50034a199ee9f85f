"""torchvision ResNet trunks as feature extractors, one or several feature levels."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn
from torchvision.ops import FrozenBatchNorm2d

from scene_model.errors import CheckpointError, ConfigError

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")
NORMS = {"frozen_bn": FrozenBatchNorm2d, "batch_norm": nn.BatchNorm2d}
STEM = 4  # conv1, bn1, relu, maxpool: the first entries of ``Backbone.body``


def load_backbone_weights(net: nn.Module, name: str, weights: str) -> None:
    """Load ``weights``: a local file (a state dict) or a torchvision weights name such as IMAGENET1K_V2."""
    path = Path(weights).expanduser()
    if path.suffix in (".pth", ".pt", ".ckpt") or path.exists():
        if not path.is_file():
            raise CheckpointError(f"backbone weights file {path} does not exist (model.backbone.weights)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        try:
            missing, _ = net.load_state_dict(state, strict=False)
        except RuntimeError as err:  # shapes that do not fit
            first = str(err).strip().splitlines()[1:2] or [str(err)]
            raise CheckpointError(f"{path} does not fit {name}: {first[0].strip()}") from None
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


def _out_channels(layer: nn.Sequential) -> int:
    last_block = layer[-1]
    return (last_block.conv3 if hasattr(last_block, "conv3") else last_block.conv2).out_channels


class Backbone(nn.Module):
    """A ResNet cut after ``layer{out_layer}``, returning the last ``num_levels`` stages.

    ``out_layer=3`` ends at stride 16, ``out_layer=4`` at stride 32; ``num_levels=2`` adds the stage
    before (stride 8 or 16), and so on. ``frozen_bn`` (the DETR choice for pretrained weights) keeps
    batch statistics fixed; ``batch_norm`` trains them, which is what training from scratch needs.

    How the backbone is trained travels with it (the ``model/backbone`` group holds it): ``freeze``
    holds it fixed until epoch ``unfreeze_after`` (0: for the whole run), which the ``BackboneFreeze``
    callback applies; its learning rate is the optimiser's times ``lr_mult``.
    """

    def __init__(
        self,
        name: str,
        weights: str | None,
        norm: str,
        out_layer: int,
        num_levels: int,
        freeze: bool,
        unfreeze_after: int,
        lr_mult: float,
    ) -> None:
        super().__init__()
        if name not in RESNETS:
            raise ConfigError(f"model.backbone.name={name!r}; expected one of {', '.join(RESNETS)}")
        if norm not in NORMS:
            raise ConfigError(f"model.backbone.norm={norm!r}; expected one of {', '.join(NORMS)}")
        if out_layer not in (3, 4):
            raise ConfigError(f"model.backbone.out_layer={out_layer}; expected 3 or 4")
        if not 1 <= num_levels <= out_layer:
            raise ConfigError(f"model.backbone.num_levels={num_levels}; expected 1..{out_layer} for out_layer={out_layer}")
        net = getattr(torchvision.models, name)(weights=None, norm_layer=NORMS[norm])
        if weights:
            load_backbone_weights(net, name, weights)
        layers = [net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4]
        self.body = nn.Sequential(*layers[: STEM + out_layer])
        self.levels = list(range(out_layer - num_levels + 1, out_layer + 1))  # ResNet stage numbers
        self.channels = [_out_channels(getattr(net, f"layer{i}")) for i in self.levels]
        self.freeze, self.unfreeze_after, self.lr_mult = freeze, unfreeze_after, lr_mult

    def stage_channels(self, stage: int) -> int:
        """Output channels of ResNet stage ``stage`` (1..out_layer)."""
        return _out_channels(self.body[STEM + stage - 1])

    def stages(self, images: Tensor, stages: list[int]) -> dict[int, Tensor]:
        """images float[N, 3, H, W] -> {stage: float[N, C, H/2^(stage+1), W/2^(stage+1)]} for ``stages``."""
        features = {}
        x = images
        for index, module in enumerate(self.body):
            x = module(x)
            stage = index - STEM + 1
            if stage in stages:
                features[stage] = x
        return features

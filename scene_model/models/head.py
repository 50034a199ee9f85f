"""BBoxHead: per-query, per-frame box, class and existence predictions."""

from __future__ import annotations

import math

from torch import Tensor, nn


class MLP(nn.Sequential):
    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_layers: int) -> None:
        dims = [in_dim] + [hidden] * (num_layers - 1)
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(dims[-1], out_dim))
        super().__init__(*layers)


class BBoxHead(nn.Module):
    """hidden [..., d] -> the model output keys of the design contract, same leading shape.

    bbox_center: sigmoid, (cx, cy) in 0..1; bbox_size: sigmoid then clamp(min=1e-3), (w, h) in 0..1;
    cls_logits: C logits (sigmoid/focal classification, no background class);
    exist_conf: sigmoid of exist_logit, whether the query's object is visible in that frame.
    """

    def __init__(self, d_model: int, num_classes: int, prior_prob: float = 0.01, min_size: float = 1e-3) -> None:
        super().__init__()
        self.box = MLP(d_model, d_model, 4, 3)
        self.cls = nn.Linear(d_model, num_classes)
        self.exist = nn.Linear(d_model, 1)
        self.min_size = min_size
        bias = -math.log((1 - prior_prob) / prior_prob)
        nn.init.constant_(self.cls.bias, bias)
        nn.init.constant_(self.exist.bias, bias)
        nn.init.zeros_(self.box[-1].weight)
        nn.init.zeros_(self.box[-1].bias)

    def forward(self, hidden: Tensor, reference: Tensor | None = None) -> dict[str, Tensor]:
        """``reference`` (optional, logits of a box [..., 4]) is added before the sigmoid."""
        raw = self.box(hidden)
        if reference is not None:
            raw = raw + reference
        boxes = raw.sigmoid()
        exist_logit = self.exist(hidden)
        return {
            "bbox_center": boxes[..., :2],
            "bbox_size": boxes[..., 2:].clamp(min=self.min_size),
            "cls_logits": self.cls(hidden),
            "exist_conf": exist_logit.sigmoid(),
            "exist_logit": exist_logit,
        }


def prediction_scores(outputs: dict[str, Tensor]) -> Tensor:
    """Per query and frame, the one score the tracker thresholds: the existence probability (whether
    the query's object is visible in that frame), float[..., Q].

    It is trained with a plain BCE, so it reads as a probability and a threshold of 0.5 means what it
    says; the focal-trained class head (whose probabilities focal loss keeps well below 1) says which
    class. With one class the two estimate the same thing, and their product would square it.
    """
    return outputs["exist_conf"].squeeze(-1)

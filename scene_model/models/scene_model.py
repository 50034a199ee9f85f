"""SceneModel: clip [B,T,3,H,W] -> Q track queries, each one object across the whole window."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from scene_model.models.backbone import Backbone
from scene_model.models.head import BBoxHead, inverse_sigmoid
from scene_model.models.transformer import SpaceTimeTransformer, sine_position_1d, sine_position_2d

OUTPUT_KEYS = ("bbox_center", "bbox_size", "cls_logits", "exist_conf", "exist_logit")


class SceneModel(nn.Module):
    """Backbone per frame -> per-frame encoder -> space-time decoder over shared track queries.

    Each query carries a learned reference box; every decoder layer refines it (the box head predicts
    an offset in logit space from the previous layer's box, DETR-style iterative refinement).
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int = 1,
        num_queries: int = 20,
        d_model: int = 128,
        nhead: int = 8,
        num_encoder_layers: int = 2,
        num_decoder_layers: int = 3,
        dim_feedforward: int = 512,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_queries = num_queries
        self.num_classes = num_classes
        self.input_proj = nn.Conv2d(backbone.num_channels, d_model, kernel_size=1)
        self.transformer = SpaceTimeTransformer(
            d_model, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward, dropout
        )
        self.query_content = nn.Embedding(num_queries, d_model)
        self.query_pos = nn.Embedding(num_queries, d_model)
        self.reference = nn.Embedding(num_queries, 4)
        self.head = BBoxHead(d_model, num_classes)
        nn.init.uniform_(self.reference.weight[:, :2], -2.0, 2.0)
        nn.init.constant_(self.reference.weight[:, 2:], -2.0)

    def encode_frames(self, frames: Tensor, padding_mask: Tensor) -> tuple[Tensor, Tensor]:
        """frames [B,T,3,H,W] -> memory [B*T,S,d] and its position [1,S,d]; padded frames are not computed."""
        batch, num_frames = frames.shape[:2]
        flat = frames.flatten(0, 1)
        valid = ~padding_mask.flatten()
        features = self.input_proj(self.backbone(flat[valid]))
        _, dim, height, width = features.shape
        tokens = features.flatten(2).transpose(1, 2)
        memory_pos = sine_position_2d(height, width, dim, frames.device)[None]
        encoded = self.transformer.encode(tokens, memory_pos)
        memory = encoded.new_zeros(batch * num_frames, height * width, dim)
        memory[valid] = encoded
        return memory, memory_pos

    def forward(self, frames: Tensor, padding_mask: Tensor | None = None) -> dict[str, Any]:
        """frames float[B,T,3,H,W], padding_mask bool[B,T] (True = padded) -> outputs.

        Outputs: bbox_center [B,T,Q,2], bbox_size [B,T,Q,2], cls_logits [B,T,Q,C], exist_conf and
        exist_logit [B,T,Q,1], and ``aux``: the same dicts for the earlier decoder layers.
        """
        batch, num_frames = frames.shape[:2]
        if padding_mask is None:
            padding_mask = torch.zeros(batch, num_frames, dtype=torch.bool, device=frames.device)
        memory, memory_pos = self.encode_frames(frames, padding_mask)
        queries, dim = self.num_queries, self.query_content.embedding_dim
        time_pos = sine_position_1d(torch.arange(num_frames, device=frames.device), dim)
        query_pos = self.query_pos.weight[None, None] + time_pos[None, :, None]
        query_pos = query_pos.expand(batch, num_frames, queries, dim)
        tgt = self.query_content.weight[None, None].expand(batch, num_frames, queries, dim)
        hidden_states = self.transformer.decode(tgt, query_pos, memory, memory_pos, padding_mask)
        reference = self.reference.weight[None, None].expand(batch, num_frames, queries, 4)
        layer_outputs = []
        for hidden in hidden_states:
            out = self.head(hidden, reference)
            reference = inverse_sigmoid(torch.cat([out["bbox_center"], out["bbox_size"]], dim=-1)).detach()
            layer_outputs.append(out)
        outputs: dict[str, Any] = dict(layer_outputs[-1])
        outputs["aux"] = layer_outputs[:-1]
        return outputs


def build_scene_model(
    backbone: dict,
    num_classes: int = 1,
    num_queries: int = 20,
    d_model: int = 128,
    nhead: int = 8,
    num_encoder_layers: int = 2,
    num_decoder_layers: int = 3,
    dim_feedforward: int = 512,
    dropout: float = 0.0,
    **training_options: Any,
) -> SceneModel:
    """Build a SceneModel from the ``model`` config.

    ``backbone`` holds the model/backbone group; its training-only keys (freeze, unfreeze_after,
    lr_mult) are read by the training side and ignored here, as are other ``training_options``
    (channels_last, compile), which the Lightning module applies.
    """
    backbone_args = {k: v for k, v in dict(backbone).items() if k in ("name", "weights", "norm", "out_layer")}
    return SceneModel(
        Backbone(**backbone_args),
        num_classes=num_classes,
        num_queries=num_queries,
        d_model=d_model,
        nhead=nhead,
        num_encoder_layers=num_encoder_layers,
        num_decoder_layers=num_decoder_layers,
        dim_feedforward=dim_feedforward,
        dropout=dropout,
    )

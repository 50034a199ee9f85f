"""The space-time transformer: a per-frame encoder and a decoder whose track queries are shared by
the T frames of a clip (one query = one object for the whole window).

Each decoder layer: self-attention among the queries of a frame, cross-attention from each frame's
queries to that frame's encoded features, attention across time for each query (padded frames
masked), then a feed-forward block. A query's positional part is computed from its current box
(DAB-DETR's anchor boxes): every layer refines the box per frame, and the next layer looks where that
box is. Every layer's predictions are returned for auxiliary losses.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from scene_model.boxes import inverse_sigmoid, output_boxes
from scene_model.models.head import MLP


def sine_position_1d(positions: Tensor, dim: int, temperature: float = 10000.0) -> Tensor:
    """positions float[...] -> float[..., dim] sinusoidal encoding."""
    half = dim // 2
    freq = temperature ** (torch.arange(half, device=positions.device, dtype=torch.float32) / half)
    angles = positions.float()[..., None] / freq
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def sine_position_2d(height: int, width: int, dim: int, device: torch.device) -> Tensor:
    """DETR's sine encoding of a feature map, coordinates normalised to the canvas: float[height * width, dim]."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height * 2 * math.pi
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width * 2 * math.pi
    pos_y = sine_position_1d(ys, dim // 2)[:, None, :].expand(height, width, -1)
    pos_x = sine_position_1d(xs, dim // 2)[None, :, :].expand(height, width, -1)
    return torch.cat([pos_y, pos_x], dim=-1).reshape(height * width, dim)


def sine_box_embedding(boxes: Tensor, dim: int) -> Tensor:
    """boxes float[..., 4] (cx, cy, w, h) in 0..1 -> float[..., 2 * dim], the feature map's encoding
    of (cy, cx) followed by that of (w, h), ``dim / 2`` channels each."""
    scaled = boxes * 2 * math.pi
    order = scaled[..., [1, 0, 2, 3]]
    return sine_position_1d(order, dim // 2).flatten(-2)


class Attention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` (batch first) that computes in float32 on a CPU under bf16 autocast: the
    CPU kernels of scaled dot-product attention run several times slower in bf16 than in float32 (its
    backward up to 10x), while the rest of the model gains from bf16 (``bench/precision.py``). On a GPU it
    follows autocast."""

    def __init__(self, d_model: int, nhead: int, dropout: float, add_zero_attn: bool = False) -> None:
        super().__init__(d_model, nhead, dropout=dropout, batch_first=True, add_zero_attn=add_zero_attn)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, **kwargs) -> tuple[Tensor, Tensor | None]:
        if query.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return super().forward(query.float(), key.float(), value.float(), **kwargs)
        return super().forward(query, key, value, **kwargs)


class FeedForward(nn.Sequential):
    def __init__(self, d_model: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__(
            nn.Linear(d_model, dim_feedforward), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(dim_feedforward, d_model)
        )


class EncoderLayer(nn.Module):
    """Post-norm self-attention over the tokens of one frame, position added to queries and keys."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.attn = Attention(d_model, nhead, dropout)
        self.ffn = FeedForward(d_model, dim_feedforward, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, src: Tensor, pos: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """src [N,S,d], pos [N or 1,S,d], key_padding_mask bool[N,S] (True = canvas padding)."""
        q = src + pos
        attended = self.attn(q, q, src, key_padding_mask=key_padding_mask, need_weights=False)[0]
        src = self.norm1(src + self.dropout(attended))
        return self.norm2(src + self.dropout(self.ffn(src)))


@dataclass
class Masks:
    """What a decoder layer may not attend."""

    time_padding: Tensor  # bool[B,T]: padded frames
    memory_padding: Tensor | None = None  # bool[B*T,S]: canvas padding
    self_attn_mask: Tensor | None = None  # bool[N,N], True = may not attend (matching queries do not see denoising ones)
    query_padding: Tensor | None = None  # bool[B,N]: queries no other query may attend (denoising slots of batch padding)


class SpaceTimeDecoderLayer(nn.Module):
    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = Attention(d_model, nhead, dropout)
        self.cross_attn = Attention(d_model, nhead, dropout)
        self.time_attn = Attention(d_model, nhead, dropout)
        self.ffn = FeedForward(d_model, dim_feedforward, dropout)
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(4))
        self.dropout = nn.Dropout(dropout)

    def forward(self, tgt: Tensor, query_pos: Tensor, memory: Tensor, memory_pos: Tensor, masks: Masks) -> Tensor:
        """tgt, query_pos [B,T,N,d]; memory [B*T,S,d]; memory_pos [B*T or 1,S,d] -> [B,T,N,d]."""
        batch, frames, queries, dim = tgt.shape
        time_padding, memory_padding = masks.time_padding, masks.memory_padding
        self_attn_mask, query_padding = masks.self_attn_mask, masks.query_padding
        x = tgt.reshape(batch * frames, queries, dim)
        pos = query_pos.reshape(batch * frames, queries, dim)
        key_padding = query_padding.repeat_interleave(frames, dim=0) if query_padding is not None else None
        q = x + pos
        attended = self.self_attn(q, q, x, attn_mask=self_attn_mask, key_padding_mask=key_padding, need_weights=False)[0]
        x = self.norms[0](x + self.dropout(attended))
        attended = self.cross_attn(x + pos, memory + memory_pos, memory, key_padding_mask=memory_padding, need_weights=False)[0]
        x = self.norms[1](x + self.dropout(attended))
        # Across time, per query: [B*N, T, d].
        y = x.reshape(batch, frames, queries, dim).transpose(1, 2).reshape(batch * queries, frames, dim)
        y_pos = query_pos.transpose(1, 2).reshape(batch * queries, frames, dim)
        q = y + y_pos
        time_keys = time_padding.repeat_interleave(queries, dim=0)
        y = self.norms[2](y + self.dropout(self.time_attn(q, q, y, key_padding_mask=time_keys, need_weights=False)[0]))
        x = y.reshape(batch, queries, frames, dim).transpose(1, 2)
        return self.norms[3](x + self.dropout(self.ffn(x)))


BoxHead = Callable[[Tensor, Tensor], dict[str, Tensor]]


class SpaceTimeTransformer(nn.Module):
    def __init__(
        self,
        d_model: int = 128,
        nhead: int = 8,
        num_encoder_layers: int = 2,
        num_decoder_layers: int = 3,
        dim_feedforward: int = 512,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.encoder = nn.ModuleList(EncoderLayer(d_model, nhead, dim_feedforward, dropout) for _ in range(num_encoder_layers))
        self.decoder = nn.ModuleList(
            SpaceTimeDecoderLayer(d_model, nhead, dim_feedforward, dropout) for _ in range(num_decoder_layers)
        )
        self.box_to_query_pos = MLP(2 * d_model, d_model, d_model, 2)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def encode(self, src: Tensor, pos: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """src [N,S,d], pos [N or 1,S,d], key_padding_mask bool[N,S] -> memory [N,S,d]."""
        for layer in self.encoder:
            src = layer(src, pos, key_padding_mask)
        return src

    def decode(
        self,
        tgt: Tensor,
        reference: Tensor,
        time_pos: Tensor,
        memory: Tensor,
        memory_pos: Tensor,
        masks: Masks,
        head: BoxHead,
        box_pooling: nn.ModuleList | None = None,
        box_features: Tensor | None = None,
    ) -> list[dict[str, Tensor]]:
        """Iterative box refinement; returns each layer's ``head`` outputs, the last layer last (with
        ``hidden``, its queries [B,T,N,d]).

        tgt [B,T,N,d] query contents; reference [B,T,N,4] initial boxes (cx, cy, w, h) in 0..1;
        time_pos [B,T,d]. ``head(hidden, box_logits)`` predicts boxes as offsets of ``box_logits``.
        Each layer's box (detached) is the next layer's reference. With ``box_pooling`` (one
        ``BoxPooling`` per layer) each layer first adds the features of its reference boxes, pooled
        from ``box_features`` [B*T,d,h,w].
        """
        outputs = []
        for index, layer in enumerate(self.decoder):
            if box_pooling is not None:
                tgt = box_pooling[index](tgt, reference, box_features)
            query_pos = self.box_to_query_pos(sine_box_embedding(reference, self.d_model)) + time_pos[:, :, None]
            tgt = layer(tgt, query_pos, memory, memory_pos, masks)
            out = head(tgt, inverse_sigmoid(reference))
            outputs.append(out)
            reference = output_boxes(out).detach()
        outputs[-1]["hidden"] = tgt
        return outputs

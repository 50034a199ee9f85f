"""The space-time transformer: a per-frame encoder and a decoder whose Q track queries are shared by
the T frames of a clip (one query = one object for the whole window).

Each decoder layer: self-attention among the queries of a frame, cross-attention from each frame's
queries to that frame's encoded features, attention across time for each query (padded frames
masked), then a feed-forward block. Every layer's output is returned for auxiliary losses.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sine_position_1d(positions: Tensor, dim: int, temperature: float = 10000.0) -> Tensor:
    """positions float[...] -> float[..., dim] sinusoidal encoding."""
    half = dim // 2
    freq = temperature ** (torch.arange(half, device=positions.device, dtype=torch.float32) / half)
    angles = positions.float()[..., None] / freq
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def sine_position_2d(height: int, width: int, dim: int, device: torch.device) -> Tensor:
    """DETR's normalised sine encoding of a feature map: float[height * width, dim]."""
    scale = 2 * math.pi
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height * scale
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width * scale
    pos_y = sine_position_1d(ys, dim // 2, temperature=10000.0)[:, None, :].expand(height, width, -1)
    pos_x = sine_position_1d(xs, dim // 2, temperature=10000.0)[None, :, :].expand(height, width, -1)
    return torch.cat([pos_y, pos_x], dim=-1).reshape(height * width, dim)


class FeedForward(nn.Sequential):
    def __init__(self, d_model: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__(
            nn.Linear(d_model, dim_feedforward), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(dim_feedforward, d_model)
        )


class EncoderLayer(nn.Module):
    """Post-norm self-attention over the tokens of one frame, position added to queries and keys."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.ffn = FeedForward(d_model, dim_feedforward, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, src: Tensor, pos: Tensor) -> Tensor:
        q = src + pos
        src = self.norm1(src + self.dropout(self.attn(q, q, src, need_weights=False)[0]))
        return self.norm2(src + self.dropout(self.ffn(src)))


class SpaceTimeDecoderLayer(nn.Module):
    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.time_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.ffn = FeedForward(d_model, dim_feedforward, dropout)
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(4))
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        tgt: Tensor,
        query_pos: Tensor,
        memory: Tensor,
        memory_pos: Tensor,
        time_padding: Tensor,
        self_attn_mask: Tensor | None = None,
    ) -> Tensor:
        """tgt, query_pos [B,T,Q,d]; memory, memory_pos [B*T,S,d]; time_padding bool[B,T] -> [B,T,Q,d].

        ``self_attn_mask`` bool[Q,Q], True = may not attend (keeps matching queries from seeing
        denoising queries).
        """
        batch, frames, queries, dim = tgt.shape
        x = tgt.reshape(batch * frames, queries, dim)
        pos = query_pos.reshape(batch * frames, queries, dim)
        q = x + pos
        x = self.norms[0](x + self.dropout(self.self_attn(q, q, x, attn_mask=self_attn_mask, need_weights=False)[0]))
        attended = self.cross_attn(x + pos, memory + memory_pos, memory, need_weights=False)[0]
        x = self.norms[1](x + self.dropout(attended))
        # Across time, per query: [B*Q, T, d].
        y = x.reshape(batch, frames, queries, dim).transpose(1, 2).reshape(batch * queries, frames, dim)
        y_pos = query_pos.transpose(1, 2).reshape(batch * queries, frames, dim)
        key_padding = time_padding.repeat_interleave(queries, dim=0)
        q = y + y_pos
        y = self.norms[2](y + self.dropout(self.time_attn(q, q, y, key_padding_mask=key_padding, need_weights=False)[0]))
        x = y.reshape(batch, queries, frames, dim).transpose(1, 2)
        return self.norms[3](x + self.dropout(self.ffn(x)))


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
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def encode(self, src: Tensor, pos: Tensor) -> Tensor:
        """src [N,S,d], pos [N or 1,S,d] -> memory [N,S,d]."""
        for layer in self.encoder:
            src = layer(src, pos)
        return src

    def decode(
        self,
        tgt: Tensor,
        query_pos: Tensor,
        memory: Tensor,
        memory_pos: Tensor,
        time_padding: Tensor,
        self_attn_mask: Tensor | None = None,
    ) -> list[Tensor]:
        """Returns each decoder layer's output, [B,T,Q,d] each, the last one last."""
        outputs = []
        for layer in self.decoder:
            tgt = layer(tgt, query_pos, memory, memory_pos, time_padding, self_attn_mask)
            outputs.append(tgt)
        return outputs

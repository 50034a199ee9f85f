"""SceneModel: clip [B,T,3,H,W] -> Q track queries, each one object across the whole window."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from scene_model.errors import ConfigError
from scene_model.models.backbone import STEM, Backbone
from scene_model.models.box_pooling import BoxPooling
from scene_model.models.head import BBoxHead
from scene_model.models.proposals import ProposalHead, select_queries
from scene_model.models.transformer import Masks, SpaceTimeTransformer, sine_position_1d, sine_position_2d


@dataclass
class EncodedClip:
    """The per-frame part of the model over a clip of L frames (``SceneModel.encode``): every window of
    the clip is decoded from it, so a frame two windows share is encoded once."""

    memory: Tensor  # float[B, L, S, d]: the encoder's tokens of each frame (S cells over all levels)
    memory_pos: Tensor  # float[1, S, d]
    cells: Tensor | None  # bool[B, S]: cells outside each sample's image (canvas padding), None: none
    shapes: list[tuple[int, int]]  # (height, width) of each level's feature map
    box_features: Tensor | None  # float[B, L, d, h, w] (box pooling), None without
    proposal_logits: Tensor | None  # float[B, L, S, C] (two-stage), None without
    proposal_boxes: Tensor | None  # float[B, L, S, 4] cxcywh

    def window(self, start: int, length: int) -> EncodedClip:
        """Frames ``start`` .. ``start + length - 1``."""
        cut = slice(start, start + length)
        pick = lambda x: x[:, cut] if x is not None else None  # noqa: E731
        return EncodedClip(
            self.memory[:, cut], self.memory_pos, self.cells, self.shapes, pick(self.box_features),
            pick(self.proposal_logits), pick(self.proposal_boxes),
        )

    def frame(self, b: int, t: int) -> EncodedClip:
        """Frame ``t`` of sample ``b`` as a one-frame clip of one sample."""
        pick = lambda x: x[b : b + 1, t : t + 1] if x is not None else None  # noqa: E731
        cells = self.cells[b : b + 1] if self.cells is not None else None
        return EncodedClip(
            pick(self.memory), self.memory_pos, cells, self.shapes, pick(self.box_features),
            pick(self.proposal_logits), pick(self.proposal_boxes),
        )

    @staticmethod
    def stack(frames: list[list[EncodedClip]]) -> EncodedClip:
        """One clip of B samples of L frames from ``frames[b][t]``, each a one-frame clip of one sample
        (``frame``); the samples' canvas cells from each sample's first frame."""
        first = frames[0][0]
        join = lambda field: (  # noqa: E731
            torch.cat([torch.cat([getattr(f, field) for f in row], dim=1) for row in frames])
            if getattr(first, field) is not None else None
        )
        masked = [row[0].cells for row in frames]
        cells = None
        if any(c is not None for c in masked):
            size = first.memory.shape[2]
            cells = torch.cat([c if c is not None else torch.zeros(1, size, dtype=torch.bool, device=first.memory.device) for c in masked])
        return EncodedClip(
            join("memory"), first.memory_pos, cells, first.shapes, join("box_features"), join("proposal_logits"), join("proposal_boxes")
        )


@dataclass
class CarriedQueries:
    """Queries carried from a window into the next window of the same sequence (an association's, e.g.
    MOTR's track queries), K per sample, decoded after the Q detect queries, each starting from its
    content and box."""

    content: Tensor  # float[B, K, d]
    boxes: Tensor  # float[B, K, 4] (cx, cy, w, h) in 0..1: the box on the frame the windows share
    padding: Tensor  # bool[B, K], True = an empty slot
    source: Tensor  # long[B, K]: the query of the previous window each one continues


@dataclass
class DenoisingQueries:
    """Extra queries decoded next to the Q matching queries (DN-DETR / DINO), D per sample.

    Each starts from a (noised) box per frame and a (noised) class label; ``attn_mask`` keeps the
    matching queries (the first Q) from attending to them, and denoising groups from each other.
    """

    boxes: Tensor  # float[B, T, D, 4] (cx, cy, w, h) in 0..1: the initial reference box per frame
    labels: Tensor  # long[B, D]
    attn_mask: Tensor  # bool[Q + D, Q + D], True = may not attend
    padding: Tensor  # bool[B, D], True = an empty slot (batch padding), attended by no query


def canvas_padding(image_sizes: Tensor, canvas: tuple[int, int], feature: tuple[int, int]) -> Tensor:
    """bool[B, h, w]: feature cells outside each sample's image (collate pads right and bottom).

    image_sizes long[B, 2] (height, width) inside the canvas (H, W); a cell is image when it covers
    any image pixel, as DETR's interpolated mask.
    """
    (height, width), (rows, cols) = canvas, feature
    valid_rows = torch.ceil(image_sizes[:, 0] * rows / height)
    valid_cols = torch.ceil(image_sizes[:, 1] * cols / width)
    row_pad = torch.arange(rows, device=image_sizes.device)[None, :] >= valid_rows[:, None]
    col_pad = torch.arange(cols, device=image_sizes.device)[None, :] >= valid_cols[:, None]
    return row_pad[:, :, None] | col_pad[:, None, :]


class SceneModel(nn.Module):
    """Backbone per frame -> per-frame encoder -> space-time decoder over shared track queries.

    Each query carries a learned reference box; every decoder layer refines it per frame (the box head
    predicts an offset in logit space from the previous layer's box, DETR-style iterative refinement)
    and the next layer's positional query is computed from it. With several backbone levels the
    encoder attends over the tokens of all levels together (a learned embedding per level). With
    ``box_pool`` > 0 every decoder layer first adds the features of its boxes, pooled per frame
    (RoIAlign, ``box_pool`` x ``box_pool``) from backbone stage ``box_stage`` (``models.box_pooling``).
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        num_queries: int,
        d_model: int,
        nhead: int,
        num_encoder_layers: int,
        num_decoder_layers: int,
        dim_feedforward: int,
        dropout: float,
        denoising: bool,
        two_stage: bool,
        box_pool: int,
        box_stage: int,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_queries = num_queries
        self.num_classes = num_classes
        groups = math.gcd(32, d_model)
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, d_model, kernel_size=1), nn.GroupNorm(groups, d_model))
            for channels in backbone.channels
        )
        self.level_embed = nn.Parameter(torch.zeros(len(backbone.channels), d_model)) if len(backbone.channels) > 1 else None
        self.transformer = SpaceTimeTransformer(
            d_model, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward, dropout
        )
        self.query_content = nn.Embedding(num_queries, d_model)
        # Initial boxes: chosen from the encoder's proposals (two-stage), or learned per query.
        self.proposals = ProposalHead(d_model, num_classes) if two_stage else None
        self.reference = None if two_stage else nn.Embedding(num_queries, 4)  # logits of the initial boxes
        # Denoising queries start from an embedding of their (noised) label; built only when used, so
        # that no parameter goes without a gradient (DDP) when denoising is off.
        self.label_embed = nn.Embedding(num_classes, d_model) if denoising else None
        self.head = BBoxHead(d_model, num_classes)
        # Box features (box_pool > 0): every decoder layer pools its boxes from backbone stage box_stage.
        self.box_stage = box_stage
        self.box_proj = self.box_pooling = None
        if box_pool > 0:
            if not 1 <= box_stage <= len(backbone.body) - STEM:
                raise ConfigError(f"model.box_stage={box_stage}; expected a backbone stage 1..{len(backbone.body) - STEM} (model.backbone.out_layer)")
            self.box_proj = nn.Sequential(
                nn.Conv2d(backbone.stage_channels(box_stage), d_model, kernel_size=1), nn.GroupNorm(groups, d_model)
            )
            self.box_pooling = nn.ModuleList(BoxPooling(d_model, box_pool) for _ in range(num_decoder_layers))
        if self.reference is not None:
            nn.init.uniform_(self.reference.weight[:, :2], -2.0, 2.0)
            nn.init.constant_(self.reference.weight[:, 2:], -2.0)
        if self.level_embed is not None:
            nn.init.normal_(self.level_embed)

    def encode(self, frames: Tensor, image_sizes: Tensor | None = None) -> EncodedClip:
        """frames [B,L,3,H,W] -> the per-frame part of the model (backbone, encoder, proposals) for the
        L frames of a clip, which ``decode`` reads window by window.

        ``image_sizes`` long[B,2] (height, width) of each sample inside the canvas (None: the whole
        canvas). Padded frames are computed like the others (skipping them would cost a host sync);
        nothing attends to them. Every frame is computed on its own (``encode_frames``): a frame's
        part does not depend on the other frames of its batch.
        """
        batch, num_frames = frames.shape[:2]
        sizes = image_sizes.repeat_interleave(num_frames, dim=0) if image_sizes is not None else None
        per_frame = self.encode_frames(frames.flatten(0, 1), sizes)
        cells = per_frame.cells[::num_frames] if per_frame.cells is not None else None
        clips = lambda x: x[:, 0].unflatten(0, (batch, num_frames)) if x is not None else None  # noqa: E731  [N,1,...] -> [B,L,...]
        return EncodedClip(
            clips(per_frame.memory), per_frame.memory_pos, cells, per_frame.shapes, clips(per_frame.box_features),
            clips(per_frame.proposal_logits), clips(per_frame.proposal_boxes),
        )

    def encode_frames(self, frames: Tensor, image_sizes: Tensor | None = None) -> EncodedClip:
        """frames [N,3,H,W], image_sizes long[N,2] (None: the whole canvas) -> the EncodedClip of N
        one-frame clips."""
        canvas = tuple(frames.shape[-2:])
        if image_sizes is not None and image_sizes.device.type == "cpu":
            if bool((image_sizes >= torch.tensor(canvas)).all()):
                image_sizes = None  # nothing to mask (a host check, no device sync): plain attention
        tokens, positions, paddings, shapes = [], [], [], []
        levels = self.backbone.levels
        stages = self.backbone.stages(frames, levels + ([self.box_stage] if self.box_proj is not None else []))
        box_features = self.box_proj(stages[self.box_stage]) if self.box_proj is not None else None
        for level, (proj, features) in enumerate(zip(self.input_proj, [stages[i] for i in levels], strict=True)):
            features = proj(features)
            _, dim, height, width = features.shape
            shapes.append((height, width))
            tokens.append(features.flatten(2).transpose(1, 2))
            pos = sine_position_2d(height, width, dim, frames.device)
            positions.append(pos + self.level_embed[level] if self.level_embed is not None else pos)
            if image_sizes is not None:
                paddings.append(canvas_padding(image_sizes, canvas, (height, width)).flatten(1))
        memory_pos = torch.cat(positions)[None]
        cells = torch.cat(paddings, dim=1).to(frames.device, non_blocking=True) if paddings else None
        memory = self.transformer.encode(torch.cat(tokens, dim=1), memory_pos, cells)
        logits = boxes = None
        if self.proposals is not None:
            logits, boxes = (x[:, None] for x in self.proposals(memory, shapes))
        return EncodedClip(
            memory[:, None], memory_pos, cells, shapes, box_features[:, None] if box_features is not None else None, logits, boxes
        )

    def decode(
        self,
        clip: EncodedClip,
        padding_mask: Tensor | None = None,
        frame_indices: Tensor | None = None,
        denoising: DenoisingQueries | None = None,
        tracks: CarriedQueries | None = None,
    ) -> dict[str, Any]:
        """The space-time decoder over the T frames of ``clip`` (a window of an encoded clip):
        padding_mask bool[B,T] (True = padded frame), frame_indices long[B,T] (the frames' numbers in
        their sequence: the time encoding follows the real frame interval; None: consecutive frames).

        The N = Q + K matching queries are the Q detect queries (their initial boxes from the encoder's
        proposals) and the K ``tracks`` carried from the previous window of the same sequence by an
        association (``scene_model.association``; each starts from its carried content and box).

        Outputs: bbox_center [B,T,N,2], bbox_size [B,T,N,2], cls_logits [B,T,N,C], exist_conf and
        exist_logit [B,T,N,1], hidden [B,T,N,d] (the last decoder layer's queries, what an association
        reads), and ``aux``: the same dicts for the earlier decoder layers. Two-stage models add
        ``enc``: the encoder's proposals, bbox_center, bbox_size [B,T,S,2] and cls_logits [B,T,S,C] for
        the S feature cells. With ``denoising`` (D queries), ``dn`` holds the decoder's keys (and its
        ``aux``) for them, [B,T,D,...].
        """
        batch, num_frames = clip.memory.shape[:2]
        device = clip.memory.device
        if padding_mask is None:
            padding_mask = torch.zeros(batch, num_frames, dtype=torch.bool, device=device)
        queries, dim = self.num_queries, self.query_content.embedding_dim
        tgt = self.query_content.weight[None, None].expand(batch, num_frames, queries, dim)
        proposals = None
        if self.proposals is not None:
            reference = select_queries(clip.proposal_logits, clip.proposal_boxes, queries, padding_mask, clip.cells)
            boxes = clip.proposal_boxes
            proposals = {"bbox_center": boxes[..., :2], "bbox_size": boxes[..., 2:], "cls_logits": clip.proposal_logits}
        else:
            reference = self.reference.weight.sigmoid()[None, None].expand(batch, num_frames, queries, 4)
        paddings = [torch.zeros(batch, queries, dtype=torch.bool, device=device)]
        if tracks is not None:
            carried = tracks.content.shape[1]
            tgt = torch.cat([tgt, tracks.content[:, None].expand(batch, num_frames, carried, dim).to(tgt.dtype)], dim=2)
            reference = torch.cat([reference, tracks.boxes[:, None].expand(batch, num_frames, carried, 4).to(reference.dtype)], dim=2)
            paddings.append(tracks.padding)
        matching = tgt.shape[2]
        self_attn_mask = None
        if denoising is not None:
            if self.label_embed is None:
                raise ConfigError("denoising queries need a model built with denoising=True (head.denoise.enabled)")
            extra = denoising.labels.shape[1]
            dn_tgt = self.label_embed(denoising.labels)[:, None].expand(batch, num_frames, extra, dim)
            tgt = torch.cat([tgt, dn_tgt], dim=2)
            reference = torch.cat([reference, denoising.boxes.to(reference.dtype)], dim=2)
            self_attn_mask = denoising.attn_mask
            paddings.append(denoising.padding)
        query_padding = torch.cat(paddings, dim=1) if len(paddings) > 1 else None
        if frame_indices is None:
            steps = torch.arange(num_frames, device=device)[None].expand(batch, -1)
        else:
            frame_indices = frame_indices.to(device)
            steps = (frame_indices - frame_indices[:, :1]).clamp(min=0)
        time_pos = sine_position_1d(steps, dim)  # [B,T,d]
        memory_padding = clip.cells.repeat_interleave(num_frames, dim=0) if clip.cells is not None else None
        box_features = clip.box_features.flatten(0, 1) if clip.box_features is not None else None
        masks = Masks(padding_mask, memory_padding, self_attn_mask, query_padding)
        layers = self.transformer.decode(
            tgt, reference, time_pos, clip.memory.flatten(0, 1), clip.memory_pos, masks, self.head,
            box_pooling=self.box_pooling, box_features=box_features,
        )
        kept = [{k: v[:, :, :matching] for k, v in out.items()} for out in layers]
        outputs: dict[str, Any] = {**kept[-1], "aux": kept[:-1]}
        if proposals is not None:
            outputs["enc"] = proposals
        if denoising is not None:
            dn = [{k: v[:, :, matching:] for k, v in out.items() if k != "hidden"} for out in layers]
            outputs["dn"] = {**dn[-1], "aux": dn[:-1]}
        return outputs

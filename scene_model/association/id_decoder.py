"""``association=id_decoder``: identity as in-context classification over the trajectories so far (MOTIP).

Each query of a window becomes a token: its decoder state on the window's first and last frame and its
boxes there (in 0..1 of its image), projected to ``dim``. A track's trajectory is the tokens of its
queries in the windows before, each tagged with the track's ID word (one of ``vocabulary`` words, drawn
at random per training chain: the words carry no meaning of their own, only what the context binds
them to) and with how many windows ago it was seen. The ID decoder (``layers`` layers of self-attention
among the new window's tokens, cross-attention to the trajectory tokens and a feed-forward block, as
MOTIP's) classifies each new token as one of the words its context holds (the others are out of the
choice) or as newborn.

Training: chains of ``chain_len`` consecutive windows of one sequence; the trajectories are the
matched queries of the earlier windows (ground-truth identities), every matched query of every window
is classified, with a cross-entropy weighted by ``weight``. Trajectory augmentation, as MOTIP's: with
probability ``occlusion`` a track is hidden for a random span of windows (its tokens neither in
context nor classified there: after the span it must be found again, and a track whose span covers
its start is newborn when it appears), and with probability ``switch`` each context token trades its
features with another switched token of its window (the context then holds identity switches, as a
tracker's history does).

Tracking: each running track keeps its tokens of the last ``history`` windows in which a visible
query continued it, and its word; the new window's tokens are classified, and the Hungarian match on
the words' probabilities links each query to at most one track (a pair needs ``id_threshold``). A query
left unlinked starts a new track under the tracker's start rule.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from scene_model.association.base import Association, Chain, TrackLinker, WindowView, first_and_last
from scene_model.boxes import from_canvas_pixels, image_scale, output_boxes, to_pixels
from scene_model.data.types import SceneBatch
from scene_model.distributed import mean_over_ranks
from scene_model.errors import ConfigError
from scene_model.models.transformer import Attention, sine_box_embedding


class IdDecoderLayer(nn.Module):
    """Self-attention among the new tokens (not in the first layer), cross-attention to the context, FFN."""

    def __init__(self, width: int, heads: int, self_attention: bool) -> None:
        super().__init__()
        self.self_attn = Attention(width, heads, 0.0, add_zero_attn=True) if self_attention else None
        self.cross_attn = Attention(width, heads, 0.0, add_zero_attn=True)
        self.ffn = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(3))

    def forward(self, tokens: Tensor, context: Tensor, token_padding: Tensor, context_padding: Tensor) -> Tensor:
        if self.self_attn is not None:
            attended = self.self_attn(tokens, tokens, tokens, key_padding_mask=token_padding, need_weights=False)[0]
            tokens = self.norms[0](tokens + attended)
        attended = self.cross_attn(tokens, context, context, key_padding_mask=context_padding, need_weights=False)[0]
        tokens = self.norms[1](tokens + attended)
        return self.norms[2](tokens + self.ffn(tokens))


@dataclass
class Trajectories:
    """A sequence's context in tracking: each track's recent tokens and its word."""

    tokens: deque[tuple[int, Tensor, Tensor]]  # (window number, tokens float[M, dim], tracks long[M]) of the last windows
    words: dict[int, int] = field(default_factory=dict)  # track id -> word
    window: int = 0  # windows seen


class IdChain(Chain):
    def __init__(self, association: IdDecoder, train: bool) -> None:
        self.association, self.train = association, train
        self.tokens: list[Tensor] = []  # per window: float[B, N, dim]
        self.tracks: list[Tensor] = []  # per window: long[B, N], the chain's track of each query (-1: none)

    def add(self, window: SceneBatch, outputs: dict[str, Any], assigned: Tensor) -> None:
        self.tokens.append(self.association.window_features(outputs, window))
        # Track indices are the batch's (SceneBatch.tracks): the same for every window of a chain.
        self.tracks.append(assigned)

    def losses(self) -> dict[str, Tensor]:
        if not self.tokens:  # a validation window: no chain
            return {}
        return {"id": self.association.weight * self.association.chain_loss(self.tokens, self.tracks, self.train)}


class IdDecoder(Association):
    def __init__(
        self, d_model: int, dim: int, layers: int, heads: int, vocabulary: int, history: int, weight: float,
        occlusion: float, switch: float, id_threshold: float, chain_len: int,
    ) -> None:
        super().__init__()
        if chain_len < 2:
            raise ConfigError(f"association.chain_len={chain_len}: the ID decoder learns from windows before a window; expected 2 or more")
        if dim % heads or (2 * dim) % heads:
            raise ConfigError(f"association.dim={dim} is not divisible by association.heads={heads}")
        self.chain_len, self.vocabulary, self.history = chain_len, vocabulary, history
        self.weight, self.occlusion, self.switch, self.id_threshold = weight, occlusion, switch, id_threshold
        self.dim = dim
        self.content = nn.Linear(2 * d_model, dim)
        self.geometry = nn.Linear(4 * dim, dim)  # the sine embeddings of the first and last boxes
        self.token_norm = nn.LayerNorm(dim)
        self.words = nn.Embedding(vocabulary + 1, dim)  # the last word: "unknown" (a new window's token)
        self.ago = nn.Embedding(chain_len, dim)  # how many windows ago a context token was seen: 1 .. chain_len - 1 (older: the last)
        self.layers = nn.ModuleList(IdDecoderLayer(2 * dim, heads, self_attention=i > 0) for i in range(layers))
        self.classify = nn.Linear(dim, vocabulary + 1)  # the words, then newborn

    @property
    def newborn(self) -> int:
        return self.vocabulary

    # --- tokens and the decoder --------------------------------------------------------------------
    def window_features(self, outputs: dict[str, Any], batch: SceneBatch) -> Tensor:
        """[B, N, dim]: each query's token (its state and boxes on the window's first and last frame, the
        boxes in 0..1 of the sample's image, so that windows of other canvases compare)."""
        padding = batch.padding_mask.to(outputs["hidden"].device)
        first, last = first_and_last(outputs["hidden"], padding)
        scale, limits = image_scale(tuple(batch.frames.shape[-2:]), batch.image_sizes, batch.orig_sizes)
        pixels = to_pixels(output_boxes(outputs).detach().float(), scale.to(first.device)[:, None, None], limits.to(first.device)[:, None, None])
        boxes = from_canvas_pixels(pixels, batch.orig_sizes.to(first.device)[:, None, None])  # [B,T,N,4] cxcywh in 0..1 of the image
        box_first, box_last = first_and_last(boxes, padding)
        geometry = torch.cat([sine_box_embedding(box_first, self.dim), sine_box_embedding(box_last, self.dim)], dim=-1)
        return self.token_norm(self.content(torch.cat([first, last], dim=-1)) + self.geometry(geometry.to(first.dtype)))

    def decode(self, tokens: Tensor, context: Tensor, words: Tensor, ago: Tensor, token_padding: Tensor,
               context_padding: Tensor) -> Tensor:
        """Logits float[E, N, vocabulary + 1] of each new token (tokens [E, N, dim]) among the words of
        ``context`` [E, M, dim] (-inf for a word the context does not hold: in-context classification) (words long[E, M], ago long[E, M] >= 1, counted as at most ``chain_len - 1``, the
        farthest a training chain reaches; padding bool: True = none)."""
        unknown = self.words.weight[self.newborn].expand_as(tokens)
        queries = torch.cat([tokens, unknown], dim=-1)
        keys = torch.cat([context + self.ago(ago.clamp(1, self.chain_len - 1)), self.words(words.clamp(0, self.vocabulary))], dim=-1)
        for layer in self.layers:
            queries = layer(queries, keys, token_padding, context_padding)
        logits = self.classify(queries[..., self.dim :]).float()
        # In-context classification: the choice is among the words the context holds, and newborn.
        held = torch.zeros(logits.shape[0], self.vocabulary + 1, dtype=torch.bool, device=logits.device)
        held.scatter_(1, torch.where(context_padding, self.newborn, words.clamp(0, self.vocabulary)), True)
        held[:, self.newborn] = True
        return logits.masked_fill(~held[:, None, :], float("-inf"))

    # --- training ------------------------------------------------------------------------------------
    def chain_loss(self, tokens: list[Tensor], tracks: list[Tensor], augment: bool) -> Tensor:
        """Cross-entropy of every matched query of every window of the chains against the trajectories
        of the windows before it (tokens / tracks per window: float[B, N, dim] / long[B, N])."""
        device = tokens[0].device
        windows, (batch, queries) = len(tokens), tracks[0].shape
        all_tokens = torch.stack(tokens, 1).float()  # [B, C, N, dim]
        track = torch.stack(tracks, 1)  # [B, C, N]
        present = track >= 0
        if augment and self.occlusion > 0:
            present &= ~self._occluded(track, windows)
        context_tokens = self._switched(all_tokens, present) if augment and self.switch > 0 else all_tokens
        # A word per (sample, track): a random draw of the vocabulary per chain.
        num_tracks = int(track.max()) + 1 if present.any() else 1
        if num_tracks > self.vocabulary:
            raise ConfigError(f"association.vocabulary={self.vocabulary}: a training chain holds {num_tracks} tracks; raise it")
        words_of = torch.rand(batch, self.vocabulary, device=device).argsort(1)[:, :num_tracks]  # [B, K]
        word = torch.gather(words_of, 1, track.clamp(min=0).flatten(1)).view(batch, windows, queries)
        # Entry (b, k): window k's tokens against the tokens of windows < k.
        window_of = torch.arange(windows, device=device)
        before = window_of[None, :, None] < window_of[:, None, None]  # [k, j, 1]: j before k
        context_padding = ~(present[:, None] & before[None])  # [B, k, C, N]
        occurs = torch.zeros(batch, windows, num_tracks + 1, dtype=torch.bool, device=device)
        occurs.scatter_(2, torch.where(present, track, num_tracks), True)  # [B, C, K + 1]: track in context at window j
        seen = torch.cat([torch.zeros_like(occurs[:, :1]), occurs.cumsum(1)[:, :-1] > 0], dim=1)[..., :num_tracks]  # before k
        target = torch.where(torch.gather(seen, 2, track.clamp(min=0)), word, self.newborn)  # in context: its word
        ago = (window_of[:, None] - window_of[None, :]).clamp(min=0)[None, :, :, None].expand(batch, -1, -1, queries)
        logits = self.decode(
            all_tokens.flatten(0, 1),
            context_tokens[:, None].expand(-1, windows, -1, -1, -1).flatten(2, 3).flatten(0, 1),
            word[:, None].expand(-1, windows, -1, -1).flatten(2, 3).flatten(0, 1),
            ago.flatten(2, 3).flatten(0, 1),
            ~present.flatten(0, 1),
            context_padding.flatten(2, 3).flatten(0, 1),
        ).float()  # [B*C, N, V+1]
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none")
        counted = present.flatten()
        return torch.where(counted, loss, 0.0).sum() / mean_over_ranks(counted.sum().float()).clamp(min=1.0)

    def _occluded(self, track: Tensor, windows: int) -> Tensor:
        """bool[B, C, N]: the windows of a random span in which a track, drawn with probability ``occlusion``, is hidden."""
        batch = track.shape[0]
        num_tracks = int(track.max()) + 1 if (track >= 0).any() else 1
        hidden = torch.rand(batch, num_tracks, device=track.device) < self.occlusion
        start = torch.randint(0, windows, (batch, num_tracks), device=track.device)
        length = torch.randint(1, windows + 1, (batch, num_tracks), device=track.device)
        k = torch.arange(windows, device=track.device)[None, :, None]
        span = hidden[:, None] & (k >= start[:, None]) & (k < (start + length)[:, None])  # [B, C, K]
        return torch.gather(span, 2, track.clamp(min=0)) & (track >= 0)

    def _switched(self, tokens: Tensor, present: Tensor) -> Tensor:
        """tokens [B, C, N, dim] where, in each window, the present tokens drawn with probability ``switch``
        trade features among themselves (the words stay: a context with identity switches)."""
        batch, windows, queries, _ = tokens.shape
        chosen = present & (torch.rand(present.shape, device=tokens.device) < self.switch)
        keys = torch.where(chosen, torch.rand(present.shape, device=tokens.device), torch.arange(queries, device=tokens.device) + 2.0)
        order = keys.argsort(-1)  # the chosen, shuffled, then the others in place
        slots = torch.where(chosen, -1, torch.arange(queries, device=tokens.device)).argsort(dim=-1, stable=True)
        permutation = torch.arange(queries, device=tokens.device).expand(batch, windows, -1).clone()
        permutation.scatter_(2, slots, order)  # the chosen slots, in order, receive the chosen tokens, shuffled
        return torch.gather(tokens, 2, permutation[..., None].expand_as(tokens))

    def chain(self, train: bool) -> Chain:
        return IdChain(self, train)

    # --- tracking ------------------------------------------------------------------------------------
    def link(self, linker: TrackLinker, window: WindowView) -> Tensor:
        queries = window.scores.shape[1]
        tracks = torch.full((queries,), -1, dtype=torch.long)
        memory: Trajectories | None = linker.memory
        if memory is None or not memory.tokens:
            return tracks
        now = memory.window + 1  # this window's number
        entries = [(now - seen, t, int(tr)) for seen, tokens, track in memory.tokens for t, tr in zip(tokens, track, strict=True)
                   if int(tr) in linker.tracks and int(tr) in memory.words]
        if not entries:
            return tracks
        device = self.classify.weight.device
        context = torch.stack([t for _, t, _ in entries]).to(device)[None]
        words = torch.tensor([memory.words[tr] for _, _, tr in entries], device=device)[None]
        ago = torch.tensor([a for a, _, _ in entries], device=device)[None]
        # As in training, where the new tokens are the matched queries: the visible ones, duplicates out.
        eligible = (window.scores >= linker.options.keep_threshold).any(0) & ~window.dropped
        with torch.no_grad():
            logits = self.decode(
                window.features.to(device)[None], context, words, ago, ~eligible.to(device)[None],
                torch.zeros_like(words, dtype=torch.bool),
            )
        probability = logits[0].float().softmax(-1).cpu()  # [N, V+1]
        candidates = sorted({tr for _, _, tr in entries})
        objective = probability[:, [memory.words[c] for c in candidates]].masked_fill(~eligible[:, None], 0.0)  # [N, A]
        rows, cols = (torch.from_numpy(x) for x in linear_sum_assignment(objective.numpy(), maximize=True))
        ok = objective[rows, cols] >= self.id_threshold
        tracks[rows[ok]] = torch.tensor(candidates, dtype=torch.long)[cols[ok]]
        return tracks

    def remember(self, linker: TrackLinker, window: WindowView, tracks: Tensor) -> None:
        memory: Trajectories = linker.memory if linker.memory is not None else Trajectories(deque(maxlen=self.history))
        memory.window += 1
        for track in [t for t in memory.words if t not in linker.tracks]:
            del memory.words[track]  # an ended track gives its word back
        free = [w for w in range(self.vocabulary) if w not in set(memory.words.values())]
        for track in sorted(set(tracks[tracks >= 0].tolist()) - set(memory.words)):
            if free:
                memory.words[track] = free.pop(0)
        visible = (tracks >= 0) & (window.scores >= linker.options.keep_threshold).any(0) & ~window.dropped
        memory.tokens.append((memory.window, window.features[visible], tracks[visible]))
        linker.memory = memory

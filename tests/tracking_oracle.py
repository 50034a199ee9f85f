"""A window "model" that answers with the ground truth of each window, for testing sequence inference.

Query slots are drawn per window (optionally shuffled, as a real model's slots carry no identity
across windows); a query is present (existence 1) where its object has a box and keeps the nearest
box of the window where it has none, like a model following an occluded object.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scene_model.data.types import SceneBatch


def oracle_predict(num_queries: int = 12, shuffle: bool = False, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)

    def predict(batch: SceneBatch) -> dict[str, Tensor]:
        batch_size, num_frames = batch.padding_mask.shape
        center = torch.full((batch_size, num_frames, num_queries, 2), 0.5)
        size = torch.full((batch_size, num_frames, num_queries, 2), 1e-3)
        exist = torch.zeros(batch_size, num_frames, num_queries, 1)
        for b in range(batch_size):
            ids = sorted({int(i) for frame in batch.targets[b] for i in frame.track_ids})
            assert len(ids) <= num_queries, "more objects than oracle queries"
            slots = torch.randperm(num_queries, generator=generator) if shuffle else torch.arange(num_queries)
            slot_of = {track_id: int(slots[k]) for k, track_id in enumerate(ids)}
            for t, frame in enumerate(batch.targets[b]):
                for k, track_id in enumerate(frame.track_ids.tolist()):
                    q = slot_of[track_id]
                    center[b, t, q], size[b, t, q], exist[b, t, q] = frame.center[k], frame.size[k], 1.0
            present = exist[b, :, :, 0] > 0
            for q in present.any(0).nonzero().flatten().tolist():
                seen = present[:, q].nonzero().flatten()
                for t in (~present[:, q]).nonzero().flatten().tolist():
                    nearest = seen[(seen - t).abs().argmin()]
                    center[b, t, q], size[b, t, q] = center[b, nearest, q], size[b, nearest, q]
        return {
            "bbox_center": center,
            "bbox_size": size,
            "cls_logits": torch.full((batch_size, num_frames, num_queries, 1), 20.0),
            "exist_conf": exist,
        }

    return predict

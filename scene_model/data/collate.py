"""Collation of clips into a SceneBatch padded to [B, T, 3, H, W]."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from scene_model.data.dataset import Clip
from scene_model.data.types import SceneBatch, TargetFrame, TrackTargets


def collate_tracking(clips: Sequence[Clip]) -> SceneBatch:
    """Pad clips in time to the longest window and in space to the largest frame.

    Padded frames are zeros with ``padding_mask`` True and empty targets. Frames smaller than the
    batch canvas are padded on the right and bottom, and their boxes are rescaled so that they stay
    in 0..1 of the padded canvas the model sees.
    """
    if not clips:
        raise ValueError("collate_tracking needs at least one clip")
    num_frames = max(c.frames.shape[0] for c in clips)
    height = max(c.frames.shape[-2] for c in clips)
    width = max(c.frames.shape[-1] for c in clips)
    batch = len(clips)
    frames = clips[0].frames.new_zeros(batch, num_frames, 3, height, width)
    padding_mask = torch.ones(batch, num_frames, dtype=torch.bool)
    frame_indices = torch.full((batch, num_frames), -1, dtype=torch.long)
    targets: list[list[TargetFrame]] = []
    image_sizes = torch.zeros(batch, 2, dtype=torch.long)
    for b, clip in enumerate(clips):
        length, _, h, w = clip.frames.shape
        frames[b, :length, :, :h, :w] = clip.frames
        padding_mask[b, :length] = False
        frame_indices[b, :length] = clip.frame_indices
        image_sizes[b] = torch.tensor([h, w])
        scale = torch.tensor([w / width, h / height])
        sample = [
            TargetFrame(f.center * scale, f.size * scale, f.track_ids, f.labels, f.frame_index) for f in clip.targets
        ]
        sample += [TargetFrame.empty() for _ in range(num_frames - length)]
        targets.append(sample)
    return SceneBatch(
        frames=frames,
        targets=targets,
        padding_mask=padding_mask,
        sequence_ids=[c.sequence_id for c in clips],
        tracks=TrackTargets.from_frames(targets, num_frames),
        frame_indices=frame_indices,
        orig_sizes=torch.tensor([c.orig_size for c in clips], dtype=torch.long),
        image_sizes=image_sizes,
        skipped_frames=tuple(path for c in clips for path in c.skipped_frames),
        window_len=clips[0].window_len,
    )

"""Each frame encoded once when evaluation windows overlap (models.frame_cache): counted, and the
outputs those of encoding every window whole."""

from __future__ import annotations

import pytest
import torch

from scene_model.models.frame_cache import FrameCache
from tests.builders import datamodule, tiny_model


def count_frames(model) -> list[int]:
    """A list that grows by the frames each pass through the backbone's first convolution holds."""
    counts: list[int] = []
    model.backbone.body[0].register_forward_hook(lambda module, inputs, output: counts.append(inputs[0].shape[0]))
    return counts


def frame_keys(batch):
    return [[(name, t.frame_index) if t.frame_index >= 0 else None for t in sample] for name, sample in zip(batch.sequence_ids, batch.targets, strict=True)]


@pytest.mark.parametrize("eval_batch_size", [1, 2])
def test_shared_frames_are_encoded_once_and_decode_as_if_encoded_whole(tiny_root, eval_batch_size):
    torch.manual_seed(0)
    model = tiny_model().eval()
    dm = datamodule(tiny_root, clip_len=4, val_stride=3, eval_batch_size=eval_batch_size)
    split = dm.eval_split("train")
    cache = FrameCache()
    windows = frames_in_windows = backbone_frames = 0
    with torch.no_grad():
        for batch in dm.eval_windows(split):
            whole = model.decode(model.encode(batch.frames, batch.image_sizes), batch.padding_mask, batch.frame_indices)
            counts = count_frames(model)
            encoded = cache.encode(model.encode_frames, batch.frames, batch.image_sizes, frame_keys(batch))
            model.backbone.body[0]._forward_hooks.clear()
            backbone_frames += sum(counts)
            cached = model.decode(encoded, batch.padding_mask, batch.frame_indices)
            frames_in_windows += int((~batch.padding_mask).sum())
            windows += len(batch)
            for key in ("bbox_center", "bbox_size", "exist_conf", "cls_logits"):
                valid = ~batch.padding_mask
                torch.testing.assert_close(cached[key][valid], whole[key][valid], atol=1e-5, rtol=1e-4)
    unique = sum(record.info.length for record in split.sequences)
    assert cache.encoded == unique  # every frame of the split once
    assert frames_in_windows == unique + windows - len(split.sequences)  # ... where windows hold one frame twice
    assert backbone_frames == unique  # the backbone saw each frame once


def test_a_new_canvas_empties_the_cache(tiny_root):
    model = tiny_model().eval()
    dm = datamodule(tiny_root, clip_len=4, val_stride=3, eval_batch_size=1)
    batch = next(iter(dm.eval_windows(dm.eval_split("train"))))
    cache = FrameCache()
    with torch.no_grad():
        cache.encode(model.encode_frames, batch.frames, batch.image_sizes, frame_keys(batch))
        assert cache.encoded == 4
        cache.encode(model.encode_frames, batch.frames, batch.image_sizes, frame_keys(batch))
        assert cache.encoded == 4  # the same window again: nothing new
        padded = torch.nn.functional.pad(batch.frames, (0, 8, 0, 8))
        cache.encode(model.encode_frames, padded, batch.image_sizes, frame_keys(batch))
        assert cache.encoded == 8  # another canvas: encoded again

"""Decoding: reduced-scale JPEG decoding, boxes that follow the pixels exactly, unreadable frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from scene_model.data.collate import collate_tracking
from scene_model.data.dataset import ClipDataset, SequenceRecord
from scene_model.data.decode import BadFrameWarning, FrameGeometry, UnreadableFrameError, decode_frame
from scene_model.data.transforms import ClipTransform
from scene_model.errors import DataFormatError
from tests.builders import datamodule as make_datamodule
from tests.data_helpers import write_sequence


def test_reduced_scale_decoding_matches_full_decoding(tmp_path):
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, size=(9, 16, 3), dtype=np.uint8)
    Image.fromarray(coarse).resize((640, 360), Image.Resampling.BICUBIC).save(tmp_path / "f.jpg", quality=95)
    geometry = FrameGeometry.full(640, 360, (90, 160))
    assert geometry.draft_request(640, 360) == (160, 90)  # JPEG DCT scaling by 1/4
    ours = decode_frame(tmp_path / "f.jpg", (640, 360), geometry)
    full = np.asarray(Image.open(tmp_path / "f.jpg").convert("RGB").resize((160, 90), Image.Resampling.BILINEAR))
    assert ours.shape == (90, 160, 3) and ours.dtype == np.uint8
    assert np.abs(ours.astype(float) - full).mean() < 2.0


def test_boxes_follow_the_pixels_through_crop_resize_and_flip(tmp_path):
    rectangle = (100, 40, 80, 60)  # left, top, width, height in a 320x180 frame
    seq = write_sequence(tmp_path, length=1, width=320, height=180, rectangle=rectangle, gt="1,5,100,40,80,60,1,1,1\n")
    transform = ClipTransform(True, short_sides=(45, 60, 90, 120), max_size=None, hflip=0.5, crop=0.7,
                              crop_scale=(0.4, 1.0), color_jitter=0.0, hue=0.0, min_box_size=1.0)
    dataset = ClipDataset([SequenceRecord.load(seq, True, (1,))], 1, transform, True, max_interval=1, stride=1, skip_bad_frames=False, chain_len=1)
    checked = 0
    for seed in range(40):
        torch.manual_seed(seed)
        clip = dataset[0]
        height, width = clip.frames.shape[-2:]
        bright = clip.frames[0].mean(0) > 0.5  # normalised: white about 2.4, black about -1.9
        target = clip.targets[0]
        if len(target) == 0:
            assert bright.sum() <= max(height, width)  # at most a sliver of the rectangle is left
            continue
        assert target.track_ids.tolist() == [5]
        ys, xs = torch.nonzero(bright, as_tuple=True)
        found = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
        centre, size = target.center[0] * torch.tensor([width, height]), target.size[0] * torch.tensor([width, height])
        expected = torch.cat([centre - size / 2, centre + size / 2])
        assert (found - expected).abs().max() <= 0.75, (seed, found, expected)
        checked += 1
    assert checked >= 20


def corrupt_jpeg(path, how: str) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if how == "truncated" else b"this is not a JPEG" + data[:10])


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_corrupt_frame_is_an_error_naming_the_file(tmp_path, how):
    seq = write_sequence(tmp_path, length=2, frames=True)
    corrupt_jpeg(seq / "img1" / "00000002.jpg", how)
    with pytest.raises(UnreadableFrameError, match=r"corrupt or truncated image .*img1/00000002\.jpg"):
        decode_frame(seq / "img1" / "00000002.jpg", (100, 50), FrameGeometry.full(100, 50, (50, 100)))


def test_missing_frame_and_wrong_size_name_the_file(tmp_path):
    seq = write_sequence(tmp_path, length=2, frames=True)
    with pytest.raises(UnreadableFrameError, match=r"missing frame .*00000003\.jpg"):
        decode_frame(seq / "img1" / "00000003.jpg", (100, 50), FrameGeometry.full(100, 50, (50, 100)))
    with pytest.raises(DataFormatError, match=r"00000001\.jpg is 100x50 but seqinfo\.ini says imWidth=120, imHeight=50"):
        decode_frame(seq / "img1" / "00000001.jpg", (120, 50), FrameGeometry.full(120, 50, (50, 120)))


def test_bad_frames_stop_the_loader_or_are_skipped_and_counted(tmp_path):
    seq = write_sequence(tmp_path, length=6, frames=True, gt="1,1,10,10,20,20,1,1,1\n3,1,10,10,20,20,1,1,1\n")
    corrupt_jpeg(seq / "img1" / "00000002.jpg", "truncated")
    record = SequenceRecord.load(seq, True, (1,))
    transform = ClipTransform.evaluation(50, 1333, 1.0)
    with pytest.raises(UnreadableFrameError, match=r"00000002\.jpg"):
        ClipDataset.evaluation([record], 3, transform, 3, False)[0]
    dataset = ClipDataset.evaluation([record], 3, transform, 3, True)
    with pytest.warns(BadFrameWarning, match=r"00000002\.jpg"):
        clip = dataset[0]
    assert clip.frame_indices.tolist() == [1, 3, 4]  # the next frame fills the window
    assert [len(t) for t in clip.targets] == [1, 1, 0]
    assert clip.skipped_frames == (str(seq / "img1" / "00000002.jpg"),)
    batch = collate_tracking([clip, dataset[1]])
    assert batch.skipped_frames == clip.skipped_frames
    datamodule = make_datamodule(tmp_path, skip_bad_frames=True)
    datamodule.on_before_batch_transfer(batch, 0)
    datamodule.on_before_batch_transfer(batch, 0)
    assert datamodule.skipped_frames == {str(seq / "img1" / "00000002.jpg")}
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable frame.*00000002\.jpg"):
        datamodule.teardown("fit")


def test_a_window_without_any_readable_frame_is_an_error(tmp_path):
    seq = write_sequence(tmp_path, length=2, frames=True)
    for n in (1, 2):
        corrupt_jpeg(seq / "img1" / f"0000000{n}.jpg", "garbage")
    dataset = ClipDataset.evaluation([SequenceRecord.load(seq, True, (1,))], 2, ClipTransform.evaluation(50, 1333, 1.0), 1, True)
    with pytest.warns(BadFrameWarning), pytest.raises(UnreadableFrameError, match="no readable frame"):
        dataset[0]

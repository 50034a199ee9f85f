"""Tracking with track queries: a window's tracks go on as queries into the next window and keep their ids."""

from __future__ import annotations

import numpy as np
import torch

from scene_model.data.types import SceneBatch, TargetFrame
from scene_model.models.scene_model import TrackQueries
from scene_model.tracking import SequenceTracker, TrackerOptions

SIZE = 100  # canvas and original image, pixels


def window_batch(name: str, frames: list[int]) -> SceneBatch:
    count = len(frames)
    return SceneBatch(
        frames=torch.zeros(1, count, 3, SIZE, SIZE),
        targets=[[TargetFrame.empty(f) for f in frames]],
        padding_mask=torch.zeros(1, count, dtype=torch.bool),
        sequence_ids=[name],
        frame_indices=torch.tensor([frames]),
        orig_sizes=torch.tensor([[SIZE, SIZE]]),
        image_sizes=torch.tensor([[SIZE, SIZE]]),
    )


def box_of(obj: int, frame: int) -> list[float]:
    """Two objects on a line: 0 moves right, 1 moves left; they pass each other around frame 4."""
    x = 20 + 10 * frame if obj == 0 else 80 - 10 * frame
    return [x / SIZE, 0.5, 0.16, 0.4]


class FollowingModel:
    """A model whose detect queries see every object (one query each, in shuffled slots) and whose track
    queries follow the object their content names, wherever its box is (``jump`` moves object 0's box
    far away in the windows after the first: no overlap with where it was)."""

    def __init__(self, detect: int = 4, jump: bool = False) -> None:
        self.detect, self.jump = detect, jump
        self.generator = torch.Generator().manual_seed(0)

    def box(self, obj: int, frame: int, carried: bool) -> list[float]:
        box = box_of(obj, frame)
        if self.jump and carried and obj == 0:
            box = [box[0], 0.15, 0.1, 0.1]
        return box

    def predict(self, batch: SceneBatch, tracks: TrackQueries | None = None) -> dict:
        frames = batch.frame_indices[0].tolist()
        carried = [] if tracks is None else [int(c) for c, pad in zip(tracks.content[0, :, 0], tracks.padding[0], strict=True) if not pad]
        total = self.detect + (tracks.content.shape[1] if tracks is not None else 0)
        boxes = torch.full((1, len(frames), total, 4), 0.5)
        boxes[..., 2:] = 0.01
        exist = torch.zeros(1, len(frames), total, 1)
        hidden = torch.full((1, len(frames), total, 1), -1.0)
        slots = torch.randperm(self.detect, generator=self.generator)
        for obj in range(2):
            q = int(slots[obj])
            boxes[0, :, q] = torch.tensor([self.box(obj, f, False) for f in frames])
            exist[0, :, q], hidden[0, :, q] = 0.9, obj
        for k, obj in enumerate(carried):
            q = self.detect + k
            boxes[0, :, q] = torch.tensor([self.box(obj, f, True) for f in frames])
            exist[0, :, q], hidden[0, :, q] = 0.9, obj
        return {"bbox_center": boxes[..., :2], "bbox_size": boxes[..., 2:], "exist_conf": exist, "hidden": hidden}

    def carry(self, outputs: dict, frame: torch.Tensor, keep: torch.Tensor) -> TrackQueries:
        """The contract of SceneModel.carry: kept queries packed to the front in query order."""
        count = int(keep.sum(1).max())
        order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices[:, :count]
        padding = torch.arange(count)[None] >= keep.sum(1, keepdim=True)
        rows = torch.arange(keep.shape[0])
        hidden = outputs["hidden"][rows, frame]
        boxes = torch.cat([outputs["bbox_center"], outputs["bbox_size"]], -1)[rows, frame]
        gather = lambda x: torch.gather(x, 1, order[..., None].expand(-1, -1, x.shape[-1]))  # noqa: E731
        return TrackQueries(gather(hidden), gather(boxes), padding, order)


WINDOWS = [[1, 2, 3], [3, 4, 5], [5, 6, 7]]
EXACT = TrackerOptions(smooth_sigma=0.0, interpolate=False)


def ids_by_object(rows: np.ndarray) -> dict[int, set[int]]:
    """{object: the track ids written on it}: an object is told apart by its box's x on each frame
    (frame 3, where the two boxes are one, says nothing)."""
    found: dict[int, set[int]] = {0: set(), 1: set()}
    for frame, track, left, _top, width, _h, _s in rows:
        if frame == 3:
            continue
        centre = (left + width / 2) / SIZE
        obj = min((0, 1), key=lambda o: abs(box_of(o, int(frame))[0] - centre))
        found[obj].add(int(track))
    return found


def test_track_queries_keep_ids_through_a_crossing_and_duplicates_start_nothing():
    model = FollowingModel()
    batches = [window_batch("seq", w) for w in WINDOWS]
    rows = SequenceTracker(EXACT).track(model.predict, batches, ["seq"], carry=model.carry)["seq"]
    assert ids_by_object(rows) == {0: {1}, 1: {2}}  # one id each, although the detect queries saw both every window
    assert sorted(set(rows[:, 0].astype(int))) == list(range(1, 8)) and len(rows) == 14


def test_the_id_is_the_query_s_not_the_overlap_s():
    """Object 0's track query jumps away from its box on the shared frame: on IoU it would be a new
    track; carried, it keeps its id (and its detect query, not a duplicate now, starts another)."""
    model = FollowingModel(jump=True)
    batches = [window_batch("seq", w) for w in WINDOWS[:2]]
    rows = SequenceTracker(EXACT).track(model.predict, batches, ["seq"], carry=model.carry)["seq"]
    away = {int(r[1]) for r in rows if r[0] > 3 and abs((r[3] + r[5] / 2) / SIZE - 0.15) < 0.02}
    assert away == {1}  # object 0's track query, far from its box, keeps id 1
    assert {int(r[1]) for r in rows if r[0] > 3} == {1, 2, 3}  # object 1 keeps 2; object 0's detect query starts 3


def test_two_windows_of_one_sequence_in_one_batch_are_refused():
    import pytest

    model = FollowingModel()
    batch = window_batch("seq", [1, 2, 3])
    two = SceneBatch(
        frames=torch.zeros(2, 3, 3, SIZE, SIZE), targets=batch.targets * 2, padding_mask=torch.zeros(2, 3, dtype=torch.bool),
        sequence_ids=["seq", "seq"], frame_indices=torch.tensor([[1, 2, 3], [3, 4, 5]]),
        orig_sizes=torch.tensor([[SIZE, SIZE]] * 2), image_sizes=torch.tensor([[SIZE, SIZE]] * 2),
    )
    with pytest.raises(ValueError, match="two windows of one sequence"):
        SequenceTracker(EXACT).track(model.predict, [two], ["seq"], carry=model.carry)

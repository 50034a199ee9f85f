"""Linking windows into tracks: ids carried by IoU on shared frames, thresholds, lost tracks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scene_model.association.iou import IouLink
from scene_model.tracking.linker import TrackLinker, duplicates
from scene_model.tracking.options import TrackerOptions


def window(frames, objects, num_queries=4, slots=None):
    """boxes [T, Q, 4] and scores [T, Q]: objects is {name: (x_of_frame, score_of_frame)} placed in slots."""
    frames = np.asarray(frames)
    boxes = torch.zeros(len(frames), num_queries, 4)
    boxes[..., 2:] = 1.0  # absent queries: a 1-px box in the corner
    scores = torch.zeros(len(frames), num_queries)
    for k, (x_of, score_of) in enumerate(objects.values()):
        q = slots[k] if slots is not None else k
        for t, f in enumerate(frames):
            x = float(x_of(f))
            boxes[t, q] = torch.tensor([x, 50.0, x + 20.0, 90.0])
            scores[t, q] = float(score_of(f))
    return frames, boxes, scores


def ids_by_x(rows, frame):
    """{left x: id} of the rows of one frame."""
    return {round(r[2]): int(r[1]) for r in rows if r[0] == frame}


def run(linker, windows):
    return np.concatenate([linker.step(*w) for w in windows])


def moving(speed, start):
    return lambda f: start + speed * f


def always(value=0.9):
    return lambda f: value


def test_ids_follow_objects_when_query_slots_change_between_windows():
    objects = {"a": (moving(2, 0), always()), "b": (moving(-2, 200), always())}
    linker = TrackLinker(TrackerOptions(), IouLink())
    rows = run(linker, [window([1, 2, 3, 4], objects, slots=[0, 1]), window([4, 5, 6, 7], objects, slots=[3, 0])])
    assert sorted(rows[:, 0].astype(int).tolist()) == sorted([1, 2, 3, 4, 5, 6, 7] * 2)  # every frame once
    first, last = ids_by_x(rows, 1), ids_by_x(rows, 7)
    assert first == {2: 1, 198: 2}
    assert last == {14: 1, 186: 2}


def test_an_object_entering_later_gets_a_new_id_from_its_first_confident_frame():
    objects = {
        "a": (moving(1, 0), always()),
        "late": (moving(0, 100), lambda f: 0.0 if f < 6 else (0.4 if f == 6 else 0.8)),
    }
    linker = TrackLinker(TrackerOptions(start_threshold=0.5, keep_threshold=0.3), IouLink())
    rows = run(linker, [window([1, 2, 3, 4], objects), window([4, 5, 6, 7, 8], objects)])
    late = rows[rows[:, 2] == 100]
    assert late[:, 0].tolist() == [7, 8]  # frame 6 (0.4) is below start_threshold
    assert set(late[:, 1]) == {2}


def test_a_running_track_keeps_boxes_down_to_keep_threshold_and_drops_weaker_ones():
    scores = {1: 0.9, 2: 0.35, 3: 0.2, 4: 0.9}
    rows = run(TrackLinker(TrackerOptions(start_threshold=0.5, keep_threshold=0.3), IouLink()), [window([1, 2, 3, 4], {"a": (moving(0, 10), scores.get)})])
    assert rows[:, 0].tolist() == [1, 2, 4]
    assert rows[:, 6].tolist() == pytest.approx([0.9, 0.35, 0.9])


@pytest.mark.parametrize(("max_lost", "same_id"), [(6, True), (2, False)])
def test_an_invisible_object_keeps_its_id_for_max_lost_frames(max_lost, same_id):
    hidden = lambda f: 0.0 if 4 <= f <= 7 else 0.9  # noqa: E731 - four frames occluded
    objects = {"a": (moving(1, 0), hidden)}
    windows = [window(range(s, s + 3), objects) for s in (1, 3, 5, 7, 9)]
    rows = run(TrackLinker(TrackerOptions(max_lost=max_lost), IouLink()), windows)
    assert rows[:, 0].tolist() == [1, 2, 3, 8, 9, 10, 11]
    assert (len(set(rows[:, 1])) == 1) == same_id


def test_a_query_that_disagrees_on_the_shared_frame_is_not_linked():
    linker = TrackLinker(TrackerOptions(link_iou=0.3), IouLink())
    first = linker.step(*window([1, 2, 3, 4], {"a": (moving(0, 0), always())}))
    second = linker.step(*window([4, 5, 6], {"a": (moving(0, 150), always())}))
    assert set(first[:, 1]) == {1} and set(second[:, 1]) == {2}


def test_the_confident_duplicate_carries_the_track():
    objects = {"weak": (moving(1, 0), always(0.05)), "strong": (moving(1, 0), always(0.9))}
    linker = TrackLinker(TrackerOptions(), IouLink())
    linker.step(*window([1, 2, 3], {"a": (moving(1, 0), always())}))
    rows = linker.step(*window([3, 4, 5], objects))
    assert set(rows[:, 1]) == {1} and rows[:, 6].tolist() == pytest.approx([0.9, 0.9])


def test_the_present_query_carries_the_track_over_a_near_empty_one_that_overlaps_more():
    """A near-empty query sitting exactly on the shared frame's box (IoU 1, score 0.05) must not take
    the track from the query that is there (IoU 0.67, score 0.9): the track would vanish and the
    object would get a new id."""
    objects = {"empty": (moving(1, 0), always(0.05)), "present": (lambda f: f + 4 if f >= 3 else f, always(0.9))}
    linker = TrackLinker(TrackerOptions(), IouLink())
    linker.step(*window([1, 2, 3], {"a": (moving(1, 0), always())}))
    rows = linker.step(*window([3, 4, 5], objects))
    assert set(rows[:, 1]) == {1} and rows[:, 6].tolist() == pytest.approx([0.9, 0.9])


def test_a_duplicate_query_in_a_window_is_dropped_and_neighbours_are_kept():
    """Two queries on one object (IoU 0.82) write one track, the stronger; two objects whose boxes
    touch (IoU 0.18) stay two tracks; nms_iou=1 keeps the near duplicate."""
    strong, weak = (moving(1, 0), always(0.9)), (lambda f: f + 2, always(0.7))
    rows = TrackLinker(TrackerOptions(), IouLink()).step(*window([1, 2, 3], {"strong": strong, "weak": weak}))
    assert set(rows[:, 1]) == {1} and rows[:, 6].tolist() == pytest.approx([0.9] * 3)
    rows = TrackLinker(TrackerOptions(), IouLink()).step(*window([1, 2, 3], {"a": strong, "b": (lambda f: f + 14, always(0.7))}))
    assert len(set(rows[:, 1])) == 2
    rows = TrackLinker(TrackerOptions(nms_iou=1.0), IouLink()).step(*window([1, 2, 3], {"strong": strong, "weak": weak}))
    assert len(set(rows[:, 1])) == 2
    dropped = duplicates(*window([1, 2], {"strong": strong, "weak": weak})[1:], 0.3)
    assert dropped[:2].tolist() == [False, True]  # (the two empty corner queries are copies of each other too)


def crossing_windows():
    """Two dancers cross: short A (height 40) and tall B (height 60), apart in frames 1-2 and
    overlapping on frame 3, the frame the windows share. The new window's queries are A and B moved
    8 px towards each other, so that on the shared frame each old box overlaps the other dancer's
    new box more (IoU 0.56) than its own (0.43)."""
    a, b = [0.0, 50.0, 20.0, 90.0], [10.0, 30.0, 30.0, 90.0]
    first = torch.tensor([[[-20.0, 50.0, 0.0, 90.0], [30.0, 30.0, 50.0, 90.0]], [[-10.0, 50.0, 10.0, 90.0], [20.0, 30.0, 40.0, 90.0]], [a, b]])
    new_a, new_b = [8.0, 50.0, 28.0, 90.0], [2.0, 30.0, 22.0, 90.0]
    second = torch.tensor([[new_a, new_b]] * 3)
    return [(np.array([1, 2, 3]), first, torch.full((3, 2), 0.9)), (np.array([3, 4, 5]), second, torch.full((3, 2), 0.9))]


@pytest.mark.parametrize(("height_scale", "swapped"), [(0.1, False), (0.0, True)])
def test_at_a_crossing_the_height_of_the_track_decides_the_link(height_scale, swapped):
    rows = run(TrackLinker(TrackerOptions(height_scale=height_scale, nms_iou=1.0), IouLink()), crossing_windows())
    ids_by_height = lambda frame: {round(r[5]): int(r[1]) for r in rows if r[0] == frame}  # noqa: E731
    assert ids_by_height(1) == {40: 1, 60: 2}
    assert ids_by_height(5) == ({40: 2, 60: 1} if swapped else {40: 1, 60: 2})


def test_a_neighbour_below_link_iou_cannot_outbid_the_track_s_own_query():
    """The track's own query overlaps it by IoU 0.74 but is 35 % taller; a neighbour of its height
    overlaps by 0.05, below link_iou. The neighbour must not win the match (and then be refused by
    the gate), which would end the track and give its dancer a new id."""
    first = (np.array([1, 2, 3]), torch.tensor([[[0.0, 50.0, 20.0, 90.0]]] * 3), torch.full((3, 1), 0.9))
    own, neighbour = [0.0, 36.0, 20.0, 90.0], [18.0, 50.0, 38.0, 90.0]
    second = (np.array([3, 4, 5]), torch.tensor([[own, neighbour]] * 3), torch.full((3, 2), 0.9))
    rows = run(TrackLinker(TrackerOptions(), IouLink()), [first, second])
    assert ids_by_x(rows, 5) == {0: 1, 18: 2}

"""HungarianMatcher against brute force on small random cases; one host copy per call."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torchvision.ops import box_convert, generalized_box_iou

from scene_model.data.types import TrackTargets
from scene_model.errors import ConfigError
from scene_model.training.matcher import HungarianMatcher, Matching, greedy_assignment
from tests.builders import build


def random_case(seed: int, batch=2, frames=3, queries=4, tracks=3):
    g = torch.Generator().manual_seed(seed)
    boxes = torch.cat([torch.rand(batch, frames, tracks, 2, generator=g) * 0.6 + 0.2,
                       torch.rand(batch, frames, tracks, 2, generator=g) * 0.3 + 0.05], -1)
    present = torch.rand(batch, frames, tracks, generator=g) > 0.3
    valid = torch.ones(batch, tracks, dtype=torch.bool)
    valid[-1, -1] = False  # the last sample has one track less
    present &= valid[:, None]
    labels = torch.randint(0, 2, (batch, tracks), generator=g)
    ids = torch.where(valid, torch.arange(tracks).expand(batch, -1), -1)
    targets = TrackTargets(boxes * present[..., None], present, labels, ids, valid)
    pred = torch.cat([torch.rand(batch, frames, queries, 2, generator=g),
                      torch.rand(batch, frames, queries, 2, generator=g) * 0.4 + 0.01], -1)
    outputs = {"bbox_center": pred[..., :2], "bbox_size": pred[..., 2:],
               "cls_logits": torch.randn(batch, frames, queries, 2, generator=g) * 2}
    padding = torch.zeros(batch, frames, dtype=torch.bool)
    padding[0, -1] = True
    return outputs, targets, padding


def naive_pair_cost(m: HungarianMatcher, outputs, tracks, b, t, q, k) -> float:
    """The cost of query q for track k in frame t, computed for that one pair."""
    p = outputs["cls_logits"][b, t, q, tracks.labels[b, k]].sigmoid()
    focal = m.focal_alpha * (1 - p) ** m.focal_gamma * -torch.log(p + 1e-8) \
        - (1 - m.focal_alpha) * p ** m.focal_gamma * -torch.log(1 - p + 1e-8)
    pred = torch.cat([outputs["bbox_center"][b, t, q], outputs["bbox_size"][b, t, q]])
    gt = tracks.boxes[b, t, k]
    giou = generalized_box_iou(box_convert(pred[None], "cxcywh", "xyxy"), box_convert(gt[None], "cxcywh", "xyxy"))[0, 0]
    return float(m.cost_class * focal + m.cost_bbox * (pred - gt).abs().sum() - m.cost_giou * giou)


def brute_force_min(cost: np.ndarray) -> float:
    """Smallest total cost of assigning every column to its own row (rows >= columns)."""
    rows, cols = cost.shape
    return min(sum(cost[r, c] for c, r in enumerate(perm)) for perm in itertools.permutations(range(rows), cols))


@pytest.mark.parametrize("seed", range(4))
def test_track_cost_matrix_equals_pairwise_sum_over_present_frames(seed):
    outputs, tracks, padding = random_case(seed)
    matcher = build("head.matcher")
    cost = matcher.track_costs(outputs, tracks, tracks.present & ~padding[:, :, None])
    batch, frames, queries, _ = outputs["bbox_center"].shape
    for b, q, k in itertools.product(range(batch), range(queries), range(tracks.num_tracks)):
        expected = sum(naive_pair_cost(matcher, outputs, tracks, b, t, q, k) for t in range(frames)
                       if tracks.present[b, t, k] and not padding[b, t])
        assert cost[b, q, k].item() == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("seed", range(6))
def test_track_level_hungarian_is_optimal(seed):
    outputs, tracks, padding = random_case(seed, queries=5, tracks=4)
    matcher = build("head.matcher")
    matching = matcher.match([outputs], tracks, padding)[0]
    cost = matcher.track_costs(outputs, tracks, tracks.present & ~padding[:, :, None]).numpy()
    for b in range(2):
        counted = np.flatnonzero((tracks.present[b] & ~padding[b, :, None]).any(0).numpy())
        chosen = matching.batch == b
        assert sorted(matching.track[chosen].tolist()) == counted.tolist()  # every present track, once
        assert len(set(matching.query[chosen].tolist())) == len(counted)  # distinct queries
        found = cost[b, matching.query[chosen], matching.track[chosen]].sum()
        assert found == pytest.approx(brute_force_min(cost[b][:, counted]), abs=1e-4)


@pytest.mark.parametrize("seed", range(4))
def test_frame_level_hungarian_is_optimal_per_frame(seed):
    outputs, tracks, padding = random_case(seed, queries=4, tracks=3)
    matcher = build("head.matcher", level="frame")
    matching = matcher.match([outputs], tracks, padding)[0]
    per_frame = matcher.frame_costs(outputs, tracks).numpy()
    for b, t in itertools.product(range(2), range(3)):
        counted = np.flatnonzero((tracks.present[b, t] & ~padding[b, t]).numpy())
        chosen = (matching.batch == b) & (matching.frame == t)
        assert sorted(matching.track[chosen].tolist()) == counted.tolist()
        found = per_frame[b, t, matching.query[chosen], matching.track[chosen]].sum()
        expected = brute_force_min(per_frame[b, t][:, counted]) if len(counted) else 0.0
        assert found == pytest.approx(expected, abs=1e-4)


def test_assignment_tables():
    track_level = Matching(torch.tensor([0, 1]), torch.tensor([2, 0]), torch.tensor([1, 0]))
    table = track_level.assignment(2, 3, 4)
    assert table.shape == (2, 3, 4)
    assert (table[0, :, 2] == 1).all() and (table[1, :, 0] == 0).all() and (table >= 0).sum() == 6
    frame_level = Matching(torch.tensor([0]), torch.tensor([3]), torch.tensor([2]), torch.tensor([1]))
    table = frame_level.assignment(2, 3, 4)
    assert table[0, 1, 3] == 2 and (table >= 0).sum() == 1


def test_greedy_is_a_valid_assignment_never_better_than_optimal():
    rng = np.random.default_rng(0)
    for _ in range(20):
        cost = rng.random((5, 3))
        rows, cols = greedy_assignment(cost)
        assert len(set(rows)) == 3 and sorted(cols) == [0, 1, 2]
        assert cost[rows, cols].sum() >= brute_force_min(cost) - 1e-9
    obvious = np.full((4, 3), 10.0)
    obvious[[3, 0, 2], [0, 1, 2]] = 0.0
    rows, cols = greedy_assignment(obvious)
    assert obvious[rows, cols].sum() == 0.0


def test_greedy_solver_from_config_matches_every_track():
    outputs, tracks, padding = random_case(1)
    matching = build("head.matcher", solver="greedy").match([outputs], tracks, padding)[0]
    assert len(matching) == int((tracks.present & ~padding[:, :, None]).any(1).sum())


def test_all_layers_cost_one_host_copy(monkeypatch):
    outputs, tracks, padding = random_case(2)
    copies = []
    original = torch.Tensor.cpu
    monkeypatch.setattr(torch.Tensor, "cpu", lambda self, *a, **k: copies.append(self.shape) or original(self, *a, **k))
    for level in ("track", "frame"):
        copies.clear()
        matchings = build("head.matcher", level=level).match([outputs, outputs, outputs], tracks, padding)
        assert len(matchings) == 3 and len(copies) == 1, (level, copies)


def test_no_tracks_gives_an_empty_matching():
    outputs, tracks, padding = random_case(0)
    empty = TrackTargets(tracks.boxes[:, :, :0], tracks.present[:, :, :0], tracks.labels[:, :0],
                         tracks.track_ids[:, :0], tracks.valid[:, :0])
    for level in ("track", "frame"):
        assert len(build("head.matcher", level=level).match([outputs], empty, padding)[0]) == 0


@pytest.mark.parametrize(("key", "value"), [("solver", "auction"), ("level", "clip")])
def test_bad_options_name_their_config_key(key, value):
    with pytest.raises(ConfigError, match=f"head.matcher.{key}"):
        build("head.matcher", **{key: value})

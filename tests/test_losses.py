"""HeadAdapter: the loss dict, perfect predictions, padding, gradients."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import generalized_box_iou_loss

from scene_model.boxes import inverse_sigmoid
from scene_model.data.types import TrackTargets
from scene_model.training.head_adapter import HeadAdapter, giou_loss
from tests.builders import build, run_model, tiny_model

KEYS = {"total", "cls", "bbox", "giou", "exist", "num_matches", "num_targets"}


def random_tracks(batch=2, frames=3, tracks=3, seed=0) -> TrackTargets:
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(batch, frames, tracks, 2, generator=g) * 0.6 + 0.2
    size = torch.rand(batch, frames, tracks, 2, generator=g) * 0.2 + 0.05
    present = torch.rand(batch, frames, tracks, generator=g) > 0.2
    valid = torch.ones(batch, tracks, dtype=torch.bool)
    valid[1, -1] = False
    present &= valid[:, None]
    ids = torch.where(valid, torch.arange(tracks).expand(batch, -1), -1)
    return TrackTargets(torch.cat([centre, size], -1) * present[..., None], present, torch.zeros(batch, tracks, dtype=torch.long), ids, valid)


def outputs_from(tracks: TrackTargets, queries: int, perfect: bool) -> dict:
    batch, frames, num_tracks, _ = tracks.boxes.shape
    boxes = torch.rand(batch, frames, queries, 4) * 0.5 + 0.1
    cls = torch.full((batch, frames, queries, 1), -8.0)
    exist = torch.full((batch, frames, queries, 1), -8.0)
    if perfect:  # query q + 1 predicts track q exactly (a permutation the matcher must find)
        for k in range(num_tracks):
            boxes[:, :, k + 1] = torch.where(tracks.present[..., k, None], tracks.boxes[:, :, k], boxes[:, :, k + 1])
            hit = (tracks.present[..., k] & tracks.valid[:, None, k])[..., None]
            cls[:, :, k + 1] = torch.where(hit, 8.0, -8.0)
            exist[:, :, k + 1] = torch.where(hit, 8.0, -8.0)
    boxes = boxes.requires_grad_()
    return {
        "bbox_center": boxes[..., :2], "bbox_size": boxes[..., 2:], "cls_logits": cls.requires_grad_(),
        "exist_logit": exist.requires_grad_(), "exist_conf": exist.sigmoid(), "aux": [],
    }


def adapter(level: str = "track", denoise: bool = False) -> HeadAdapter:
    return build("head", matcher={"level": level}, denoise={"enabled": denoise})


def test_loss_dict_has_the_contract_keys():
    tracks = random_tracks()
    losses, assigned = adapter().losses_and_assignment(outputs_from(tracks, 6, False), tracks, torch.zeros(2, 3, dtype=torch.bool))
    assert set(losses) == KEYS
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    assert assigned.shape == (2, 6) and set(assigned[assigned >= 0].tolist()) <= {0, 1, 2}
    assert losses["num_targets"] == tracks.present.sum()
    assert losses["num_matches"] == tracks.valid.sum()


@pytest.mark.parametrize("level", ["track", "frame"])
def test_perfect_predictions_give_near_zero_loss(level):
    tracks = random_tracks()
    padding = torch.zeros(2, 3, dtype=torch.bool)
    perfect = adapter(level).losses_and_assignment(outputs_from(tracks, 6, True), tracks, padding)[0]
    wrong = adapter(level).losses_and_assignment(outputs_from(tracks, 6, False), tracks, padding)[0]
    assert perfect["bbox"] < 1e-6 and perfect["giou"] < 1e-5
    assert perfect["cls"] < 1e-3 and perfect["exist"] < 1e-2
    assert wrong["total"] > 100 * perfect["total"]


@pytest.mark.parametrize(("level", "denoise"), [("track", False), ("frame", False), ("track", True)])
def test_padded_frames_count_nowhere(level, denoise):
    tracks = random_tracks()
    padding = torch.zeros(2, 3, dtype=torch.bool)
    padding[0, 2] = True
    out = outputs_from(tracks, 6, False)
    head = adapter(level, denoise)
    state = head.make_denoising(tracks, 6)
    if denoise:
        out["dn"] = outputs_from(tracks, state.positive.shape[1], False)
    base = head.losses_and_assignment(out, tracks, padding, state)[0]
    detached = lambda o: {k: (v.detach().clone() if torch.is_tensor(v) else v) for k, v in o.items()}  # noqa: E731
    garbage = detached(out)
    if denoise:
        garbage["dn"] = detached(out["dn"])
    for part in [garbage] + ([garbage["dn"]] if denoise else []):
        for key in ("bbox_center", "bbox_size", "cls_logits", "exist_logit"):
            part[key][0, 2] = torch.randn_like(part[key][0, 2]) * 5
    changed = head.losses_and_assignment(garbage, tracks, padding, state)[0]
    assert set(base) == KEYS | ({"dn_cls", "dn_bbox", "dn_giou", "dn_exist"} if denoise else set())
    for key in base:
        assert torch.allclose(base[key], changed[key]), key


def test_gradients_reach_every_head_output():
    tracks = random_tracks()
    out = outputs_from(tracks, 6, False)
    adapter().losses_and_assignment(out, tracks, torch.zeros(2, 3, dtype=torch.bool))[0]["total"].backward()
    for key in ("cls_logits", "exist_logit"):
        assert out[key].grad is not None and out[key].grad.abs().sum() > 0, key
    boxes_leaf = out["bbox_center"]._base
    assert boxes_leaf.grad is not None and boxes_leaf.grad.abs().sum() > 0


def test_gradients_reach_every_model_parameter():
    from scene_model.data.collate import collate_tracking
    from tests.test_collate import make_clip

    model = tiny_model(backbone={"num_levels": 2}, num_decoder_layers=2, num_queries=5, denoising=True)
    batch = collate_tracking([make_clip(2, 64, 96, [[1, 2], [2]]), make_clip(2, 48, 64, [[3], [3]])])
    head = adapter(denoise=True)
    state = head.make_denoising(batch.tracks, model.num_queries)
    outputs = run_model(model, batch.frames, batch.padding_mask, batch.image_sizes, state.queries)
    losses = head.losses_and_assignment(outputs, batch.tracks, batch.padding_mask, state)[0]
    losses["total"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing


def test_inverse_sigmoid_round_trip():
    x = torch.rand(100) * 0.98 + 0.01
    assert torch.allclose(inverse_sigmoid(x).sigmoid(), x, atol=1e-5)


def test_giou_loss_matches_torchvision_in_value_and_gradient():
    torch.manual_seed(0)
    corners = torch.rand(64, 2, 2)
    boxes = torch.cat([corners.min(1).values, corners.max(1).values], -1)  # some pairs overlap, some do not
    a, b = boxes[:32].clone().requires_grad_(), boxes[32:].clone().requires_grad_()
    ours = giou_loss(a, b)
    reference = generalized_box_iou_loss(a, b, reduction="none")
    assert torch.allclose(ours, reference, atol=1e-6)
    assert (ours < 1).any() and (ours > 1).any()  # both overlapping and disjoint pairs were tested
    grads = torch.autograd.grad(ours.sum(), (a, b))
    expected = torch.autograd.grad(reference.sum(), (a, b))
    assert all(torch.allclose(g, e, atol=1e-5) for g, e in zip(grads, expected, strict=True))


def test_final_layer_terms_apart_from_auxiliary_layers_and_proposals():
    """cls/bbox/giou/exist are the final layer's; ``aux`` and ``enc`` are weighted sums of their own,
    and ``total`` is all of them together. Proposals are matched frame by frame (every box of a frame
    pairs with one cell) and have no existence term."""
    tracks = random_tracks()
    padding = torch.zeros(2, 3, dtype=torch.bool)
    head = adapter()
    final = outputs_from(tracks, 6, True)
    earlier = outputs_from(tracks, 6, False)
    cells = outputs_from(tracks, 12, True)
    proposals = {k: cells[k] for k in ("bbox_center", "bbox_size", "cls_logits")}
    alone = head.losses_and_assignment(final, tracks, padding)[0]
    both = head.losses_and_assignment({**final, "aux": [earlier], "enc": proposals}, tracks, padding)[0]
    for name in ("cls", "bbox", "giou", "exist"):
        assert torch.allclose(both[name], alone[name]), name
    wrong = head.losses_and_assignment({**earlier, "aux": []}, tracks, padding)[0]
    assert torch.allclose(both["aux"], head.weighted(wrong))
    assert both["enc"] < 1e-2  # a perfect proposal per box: the frame-level matching finds it
    assert torch.allclose(both["total"], alone["total"] + both["aux"] + both["enc"])


def test_carried_queries_keep_their_track_and_detect_queries_take_every_track():
    """Queries 0-5 detect, 6-7 carried: 6 follows track 0, 7 follows nothing. Track 0 is predicted
    perfectly by detect query 1 too: it is matched there as well (the tracker drops a detect query that
    repeats a carried one), and the carried ones keep what they follow."""
    from scene_model.association.base import CarriedTargets

    tracks = random_tracks()
    out = outputs_from(tracks, 8, perfect=True)
    carried = CarriedTargets(torch.tensor([[0, -1], [0, -1]]), torch.tensor([[True, True], [True, False]]))
    losses, assigned = adapter().losses_and_assignment(out, tracks, torch.zeros(2, 3, dtype=torch.bool), carried=carried)
    assert assigned[:, 6].tolist() == [0, 0] and assigned[:, 7].tolist() == [-1, -1]
    assert assigned[:, 1].tolist() == [0, 0]
    assert losses["num_matches"] == tracks.valid.sum() + 2  # every track by a detect query, and two carried

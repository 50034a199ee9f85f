"""DinoDenoiser: noise bounds, layout, attention mask; what the denoising queries may not change."""

from __future__ import annotations

import math

import pytest
import torch

from scene_model.data.types import TrackTargets
from scene_model.training.denoiser import denoising_attention_mask, hold_nearest_box
from tests.builders import build, run_model
from tests.builders import tiny_model as small_model


def tracks_of(batch=2, frames=4, tracks=3, seed=0) -> TrackTargets:
    g = torch.Generator().manual_seed(seed)
    boxes = torch.cat([torch.rand(batch, frames, tracks, 2, generator=g) * 0.4 + 0.3,
                       torch.rand(batch, frames, tracks, 2, generator=g) * 0.2 + 0.1], -1)
    present = torch.ones(batch, frames, tracks, dtype=torch.bool)
    valid = torch.ones(batch, tracks, dtype=torch.bool)
    if tracks:
        present[0, 1, 0] = False
        valid[-1, -1] = False
    present &= valid[:, None]
    ids = torch.where(valid, torch.arange(tracks).expand(batch, -1), -1)
    return TrackTargets(boxes * present[..., None], present, torch.zeros(batch, tracks, dtype=torch.long), ids, valid)


def test_attention_mask_hides_denoising_from_matching_and_groups_from_each_other():
    mask = denoising_attention_mask(num_queries=3, num_groups=2, group_size=4)
    assert mask.shape == (11, 11)
    assert mask[:3, 3:].all() and not mask[:3, :3].any()  # matching sees matching only
    assert not mask[3:, :3].any()  # denoising sees matching
    assert not mask[3:7, 3:7].any() and not mask[7:, 7:].any()  # a group sees itself
    assert mask[3:7, 7:].all() and mask[7:, 3:7].all()  # ... and no other group


def test_absent_frames_hold_the_nearest_box():
    boxes = torch.arange(4.0)[None, :, None, None].expand(1, 4, 2, 4).clone()
    present = torch.tensor([[[False, True], [True, False], [False, False], [True, True]]])
    held = hold_nearest_box(boxes, present)[0, :, :, 0]
    assert held[:, 0].tolist() == [1.0, 1.0, 1.0, 3.0]  # before the first sighting: the first one
    assert held[:, 1].tolist() == [0.0, 0.0, 0.0, 3.0]


def test_layout_and_noise_bounds():
    tracks = tracks_of()
    denoiser = build("head.denoise", enabled=True, num_groups=3, box_noise_scale=0.4, id_noise_ratio=0.0)
    state = denoiser.make_noise(tracks, num_queries=5, generator=torch.Generator().manual_seed(0))
    assert state.positive.shape[1] == 3 * 2 * 3 and state.queries.boxes.shape == (2, 4, 18, 4)
    assert state.queries.attn_mask.shape == (23, 23)
    assert state.positive[0].tolist() == ([True] * 3 + [False] * 3) * 3
    assert torch.equal(state.queries.padding, ~state.valid) and state.queries.padding[1, 2]
    # Corner offsets relative to the box size: positives up to scale/2, negatives scale/2..scale.
    source = hold_nearest_box(tracks.boxes, tracks.present)
    gt = torch.gather(source, 2, state.track[:, None, :, None].expand(2, 4, 18, 4))
    xyxy = lambda b: torch.cat([b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2], -1)  # noqa: E731
    offset = (xyxy(state.queries.boxes) - xyxy(gt)).abs() / gt[..., 2:].repeat(1, 1, 1, 2)
    real = state.valid[:, None, :, None].expand_as(offset)
    positive = state.positive[:, None, :, None].expand_as(offset)
    assert offset[real & positive].max() <= 0.2 + 1e-4
    assert offset[real & ~positive].min() >= 0.2 - 1e-4 and offset[real & ~positive].max() <= 0.4 + 1e-4
    table = state.assignment(4)
    assert (table[~state.positive[:, None, :].expand(-1, 4, -1)] == -1).all()
    assert torch.equal(table[:, 0][state.positive & state.valid], state.track[state.positive & state.valid])


def test_id_noise_gives_positives_another_tracks_boxes_but_keeps_their_target():
    boxes = torch.cat([torch.rand(1, 6, 3, 2) * 0.4 + 0.3, torch.rand(1, 6, 3, 2) * 0.2 + 0.1], -1)
    tracks = TrackTargets(boxes, torch.ones(1, 6, 3, dtype=torch.bool), torch.zeros(1, 3, dtype=torch.long),
                          torch.arange(3)[None], torch.ones(1, 3, dtype=torch.bool))
    denoiser = build("head.denoise", enabled=True, num_groups=1, box_noise_scale=0.0, id_noise_ratio=1.0)
    state = denoiser.make_noise(tracks, num_queries=2, generator=torch.Generator().manual_seed(1))
    positives = state.positive[0].nonzero().flatten()
    for d in positives.tolist():
        own = tracks.boxes[0, :, state.track[0, d]]
        given = state.queries.boxes[0, :, d]
        same = torch.isclose(given, own, atol=1e-5).all(-1)
        assert same[0] and not same.all()  # first frame its own, later another track's
        assert same.tolist() == sorted(same.tolist(), reverse=True)  # switched once, for good
    assert (state.assignment(6)[0, :, positives] == state.track[0, positives]).all()


def test_disabled_or_empty_makes_no_queries():
    adapter = build_adapter(denoise=build("head.denoise", enabled=False))
    assert adapter.make_denoising(tracks_of(), 5) is None
    empty = tracks_of(tracks=0)
    assert build("head.denoise", enabled=True).make_noise(empty, 5) is None


def tiny_model():
    torch.manual_seed(0)
    model = small_model(num_decoder_layers=2, num_queries=5, denoising=True, box_pool=0)
    return model.eval()


def test_denoising_queries_leave_matching_outputs_unchanged_and_groups_apart():
    model, tracks = tiny_model(), tracks_of()
    frames = torch.randn(2, 4, 3, 64, 96)
    state = build("head.denoise", enabled=True, num_groups=2).make_noise(tracks, 5, torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = run_model(model, frames)
        with_dn = run_model(model, frames, denoising=state.queries)
        state.queries.boxes[:, :, 6:] = torch.rand_like(state.queries.boxes[:, :, 6:])  # group 1 changes
        state.queries.boxes[1, :, 2] = 0.5  # a padding slot of group 0 changes
        changed = run_model(model, frames, denoising=state.queries)
    for key in ("bbox_center", "bbox_size", "cls_logits", "exist_logit"):
        assert torch.allclose(plain[key], with_dn[key], atol=1e-5), key
        assert with_dn["dn"][key].shape[2] == state.positive.shape[1]
        assert torch.allclose(with_dn["dn"][key][0, :, :6], changed["dn"][key][0, :, :6], atol=1e-5), key
        others = torch.tensor([0, 1, 3, 4, 5])  # sample 1's group 0 but its padding slot 2
        assert torch.allclose(with_dn["dn"][key][1][:, others], changed["dn"][key][1][:, others], atol=1e-5), key
        assert not torch.allclose(with_dn["dn"][key][:, :, 6:], changed["dn"][key][:, :, 6:]), key
    assert len(with_dn["dn"]["aux"]) == 1


def test_denoising_losses_are_added_and_reach_the_label_embedding():
    model, tracks = tiny_model().train(), tracks_of()
    adapter = build_adapter(denoise=build("head.denoise", enabled=True))
    padding = torch.zeros(2, 4, dtype=torch.bool)
    state = adapter.make_denoising(tracks, model.num_queries)
    outputs = run_model(model, torch.randn(2, 4, 3, 64, 96), padding, denoising=state.queries)
    losses = adapter.losses_and_assignment(outputs, tracks, padding, state)[0]
    plain = adapter.losses_and_assignment(outputs, tracks, padding)[0]
    assert {"dn_cls", "dn_bbox", "dn_giou", "dn_exist"} <= set(losses) and "dn_cls" not in plain
    dn_total = sum(adapter.weights[k] * losses[f"dn_{k}"] for k in ("cls", "bbox", "giou", "exist"))
    assert torch.allclose(losses["total"], plain["total"] + dn_total)
    losses["total"].backward()
    assert model.label_embed.weight.grad is not None and model.label_embed.weight.grad.abs().sum() > 0


def test_perfect_denoising_predictions_give_near_zero_box_terms():
    tracks = tracks_of()
    adapter = build_adapter(denoise=build("head.denoise", enabled=True, num_groups=2), aux_loss=False)
    state = adapter.make_denoising(tracks, 4)
    target = torch.gather(tracks.boxes, 2, state.track[:, None, :, None].expand(2, 4, -1, 4))
    hit = (state.assignment(4) >= 0) & torch.gather(tracks.present, 2, state.track[:, None].expand(-1, 4, -1))
    logit = torch.where(hit, 9.0, -9.0)[..., None]
    dn = {"bbox_center": target[..., :2], "bbox_size": target[..., 2:].clamp(min=1e-3), "cls_logits": logit,
          "exist_logit": logit, "exist_conf": logit.sigmoid()}
    matching = {k: v[:, :, :4] * 0 + 0.5 if k.startswith("bbox") else v[:, :, :4] for k, v in dn.items()}
    losses = adapter.losses_and_assignment({**matching, "dn": dn}, tracks, torch.zeros(2, 4, dtype=torch.bool), state)[0]
    assert losses["dn_bbox"] < 1e-5 and losses["dn_giou"] < 1e-5
    assert losses["dn_cls"] < 1e-3 and losses["dn_exist"] < 1e-3


@pytest.mark.slow
def test_resnet50_with_denoising_trains_end_to_end(tiny_cfg):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from scene_model.runtime.run import train

    cfg = tiny_cfg("model/backbone=resnet50", "head.denoise.enabled=true", "head.matcher.level=frame")
    value = train(cfg)
    assert value is not None and math.isfinite(value)
    events = EventAccumulator(f"{cfg.paths.output_dir}/tensorboard")
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss/dn_cls_step", "train/loss/dn_bbox_step", "train/loss/dn_giou_step", "train/loss/dn_exist_step"} <= scalars
    assert not any(tag.startswith("val/loss/dn_") for tag in scalars)  # validation: matching queries only


def test_a_training_batch_without_tracks_keeps_the_label_embedding_in_the_graph(tiny_cfg):
    """No track, no denoising query: the label embedding still gets a (zero) gradient, as DDP with
    find_unused_parameters=false needs on every rank."""
    import dataclasses

    from scene_model.runtime.config_loader import ConfigLoader

    loader = ConfigLoader(tiny_cfg("head.denoise.enabled=true"))
    module, data = loader.build_lit_module(), loader.build_datamodule()
    data.prepare_data()
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    b, t = batch.padding_mask.shape
    empty = TrackTargets(torch.zeros(b, t, 0, 4), torch.zeros(b, t, 0, dtype=torch.bool), torch.zeros(b, 0, dtype=torch.long),
                         torch.zeros(b, 0, dtype=torch.long), torch.zeros(b, 0, dtype=torch.bool))
    losses, _ = module.loss_step(dataclasses.replace(batch, tracks=empty), train=True)
    losses["total"].backward()
    assert "dn_cls" not in losses
    assert module.model.label_embed.weight.grad is not None
    assert module.model.label_embed.weight.grad.abs().sum() == 0


def build_adapter(denoise, aux_loss=True):
    """HeadAdapter of the default config with the given denoiser."""
    adapter = build("head", aux_loss=aux_loss)
    adapter.denoiser = denoise
    return adapter

"""SceneModel and Backbone: output contract, padding in time and space, multi-scale, weights files."""

from __future__ import annotations

import pytest
import torch
import torchvision

from scene_model.errors import CheckpointError, ConfigError
from scene_model.models.scene_model import canvas_padding
from scene_model.models.transformer import EncoderLayer
from tests.builders import build, run_model, tiny_model

OUTPUT_KEYS = ("bbox_center", "bbox_size", "cls_logits", "exist_conf", "exist_logit")


def small_model(**backbone):
    torch.manual_seed(0)
    return tiny_model(backbone=backbone, num_classes=2, box_pool=0)


def make_backbone(**changes):
    return build("model.backbone", **changes)


def test_outputs_follow_the_contract():
    model = small_model().eval()
    with torch.no_grad():
        out = run_model(model, torch.randn(2, 3, 3, 64, 96))
    shapes = {"bbox_center": 2, "bbox_size": 2, "cls_logits": 2, "exist_conf": 1, "exist_logit": 1}
    for key in OUTPUT_KEYS:
        assert out[key].shape == (2, 3, 6, shapes[key]), key
    assert ((out["bbox_center"] >= 0) & (out["bbox_center"] <= 1)).all()
    assert (out["bbox_size"] >= 1e-3).all() and (out["bbox_size"] <= 1).all()
    assert torch.allclose(out["exist_conf"], out["exist_logit"].sigmoid())
    assert len(out["aux"]) == 2 and all(set(OUTPUT_KEYS) <= set(layer) for layer in out["aux"])
    assert "dn" not in out


def test_padded_frames_change_nothing_in_real_frames():
    model = small_model().eval()
    frames = torch.randn(1, 4, 3, 64, 96)
    padding = torch.tensor([[False, False, True, True]])
    other = frames.clone()
    other[:, 2:] = torch.randn_like(other[:, 2:]) * 3
    with torch.no_grad():
        a, b = run_model(model, frames, padding), run_model(model, other, padding)
    for key in OUTPUT_KEYS:
        assert torch.allclose(a[key][:, :2], b[key][:, :2], atol=1e-5), key
    assert not torch.allclose(a["cls_logits"][:, 2:], b["cls_logits"][:, 2:])  # the padded ones did change


def test_canvas_padding_marks_cells_outside_each_image():
    sizes = torch.tensor([[64, 96], [40, 50]])
    mask = canvas_padding(sizes, canvas=(64, 96), feature=(4, 6))
    assert not mask[0].any()
    assert mask[1, :3, :4].logical_not().all()  # ceil(40/16) = 3 rows, ceil(50/16) = 4 columns
    assert mask[1, 3:].all() and mask[1, :, 4:].all()


def test_encoder_ignores_padded_tokens():
    torch.manual_seed(0)
    layer = EncoderLayer(16, 4, 32, 0.0).eval()
    src, pos = torch.randn(2, 10, 16), torch.randn(1, 10, 16)
    padding = torch.zeros(2, 10, dtype=torch.bool)
    padding[1, 6:] = True
    changed = src.clone()
    changed[1, 6:] = torch.randn(4, 16) * 5
    with torch.no_grad():
        a, b = layer(src, pos, padding), layer(changed, pos, padding)
    assert torch.allclose(a[1, :6], b[1, :6], atol=1e-5) and torch.allclose(a[0], b[0])


def test_mixed_image_sizes_mask_the_canvas_padding(monkeypatch):
    model = small_model().eval()
    seen = []
    original = model.transformer.encode
    monkeypatch.setattr(model.transformer, "encode", lambda s, p, m=None: seen.append(m) or original(s, p, m))
    frames = torch.randn(2, 2, 3, 64, 96)
    with torch.no_grad():
        run_model(model, frames, image_sizes=torch.tensor([[64, 96], [64, 96]]))
        run_model(model, frames, image_sizes=torch.tensor([[64, 96], [48, 64]]))
    assert seen[0] is None  # nothing to mask
    assert seen[1].shape == (4, 4 * 6) and not seen[1][:2].any() and seen[1][2:].sum() == 2 * (4 * 6 - 3 * 4)


def test_multi_scale_features():
    backbone = make_backbone(out_layer=4, num_levels=3)
    assert backbone.channels == [128, 256, 512] and backbone.levels == [2, 3, 4]
    features = backbone.stages(torch.randn(1, 3, 64, 96), backbone.levels)
    assert [tuple(features[i].shape[1:]) for i in backbone.levels] == [(128, 8, 12), (256, 4, 6), (512, 2, 3)]
    assert make_backbone(name="resnet50", out_layer=4, num_levels=2).channels == [1024, 2048]
    model = small_model(num_levels=2)
    frames = torch.randn(1, 2, 3, 64, 96)
    clip = model.encode(frames)
    assert clip.shapes == [(8, 12), (4, 6)]
    assert clip.memory.shape == (1, 2, 8 * 12 + 4 * 6, 32) and clip.memory_pos.shape == (1, 8 * 12 + 4 * 6, 32)
    run_model(model, frames)["cls_logits"].sum().backward()
    assert model.level_embed.grad is not None and model.level_embed.grad.abs().sum() > 0


@pytest.mark.parametrize(("option", "key"), [({"num_levels": 4}, "num_levels"), ({"out_layer": 2}, "out_layer"),
                                             ({"norm": "group"}, "norm"), ({"name": "vgg"}, "name")])
def test_bad_backbone_options_name_their_key(option, key):
    with pytest.raises(ConfigError, match=f"model.backbone.{key}"):
        make_backbone(**{"out_layer": 3, **option})


def test_weights_from_a_local_file(tmp_path):
    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    backbone = make_backbone(weights=str(tmp_path / "r18.pth"), norm="frozen_bn", out_layer=3)
    assert torch.equal(backbone.body[0].weight, reference.conv1.weight)
    with pytest.raises(CheckpointError, match="does not exist"):
        make_backbone(weights=str(tmp_path / "missing.pth"))
    with pytest.raises(CheckpointError, match="does not fit resnet50"):
        make_backbone(name="resnet50", weights=str(tmp_path / "r18.pth"))
    with pytest.raises(ConfigError, match="IMAGENET1K_V1"):
        make_backbone(weights="IMAGENET_V9")


def test_denoising_queries_need_a_model_built_for_them():
    from scene_model.models.scene_model import DenoisingQueries

    model = small_model()
    queries = DenoisingQueries(torch.rand(1, 2, 2, 4), torch.zeros(1, 2, dtype=torch.long),
                               torch.zeros(8, 8, dtype=torch.bool), torch.zeros(1, 2, dtype=torch.bool))
    with pytest.raises(ConfigError, match="head.denoise.enabled"):
        run_model(model, torch.randn(1, 2, 3, 64, 96), denoising=queries)


def test_carried_queries_follow_the_detect_queries_and_empty_slots_change_nothing():
    from scene_model.models.scene_model import CarriedQueries

    model = tiny_model(num_classes=2, box_pool=0).eval()
    frames = torch.randn(2, 3, 3, 64, 96)
    content = torch.randn(2, 2, 32)
    boxes = torch.tensor([[[0.3, 0.5, 0.1, 0.3], [0.7, 0.5, 0.1, 0.3]]] * 2)
    padding = torch.tensor([[False, False], [False, True]])
    tracks = CarriedQueries(content, boxes, padding, torch.zeros(2, 2, dtype=torch.long))
    changed = CarriedQueries(content.clone(), boxes, padding, tracks.source)
    changed.content[1, 1] = torch.randn(32) * 5  # an empty slot
    with torch.no_grad():
        out, other = run_model(model, frames, tracks=tracks), run_model(model, frames, tracks=changed)
    assert out["bbox_center"].shape == (2, 3, 6 + 2, 2) and out["hidden"].shape == (2, 3, 8, 32)
    assert torch.allclose(out["bbox_center"][1, :, :7], other["bbox_center"][1, :, :7], atol=1e-5)
    assert torch.allclose(out["exist_logit"][0], other["exist_logit"][0])

"""The speed switches (trainer.precision=bf16-mixed, module.channels_last, module.compile) run and give
the loss of the plain float32 model, to the tolerance of their arithmetic."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from scene_model.runtime.config_loader import ConfigLoader
from scene_model.runtime.run import train
from scene_model.training.fast_paths import channels_last_frames


def build(cfg):
    """The lit module, one training batch and the trainer, as the run builds them (same seed: same weights)."""
    L.seed_everything(0)
    loader = ConfigLoader(cfg)
    module = loader.build_lit_module()
    data = loader.build_datamodule()
    data.prepare_data()
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    return module, batch, loader.build_trainer()


def loss_of(module, batch) -> dict[str, torch.Tensor]:
    outputs = module(batch)
    return {"outputs": outputs, **module.head_adapter.losses_and_assignment(outputs, batch.tracks, batch.padding_mask)[0]}


def test_channels_last_frames_keep_their_values_and_give_the_backbone_channels_last():
    frames = torch.randn(2, 3, 3, 8, 10)
    converted = channels_last_frames(frames)
    assert torch.equal(converted, frames)
    assert not frames.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)
    assert converted.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)


def test_bf16_mixed_gives_the_float32_loss_and_keeps_the_loss_in_float32(tiny_cfg):
    module, batch, _ = build(tiny_cfg())
    reference = loss_of(module, batch)
    _, _, trainer = build(tiny_cfg("trainer.precision=bf16-mixed"))
    with trainer.precision_plugin.forward_context():
        mixed = loss_of(module, batch)
    assert mixed["outputs"]["cls_logits"].dtype == torch.bfloat16  # autocast was on for the model
    assert mixed["total"].dtype == torch.float32
    assert torch.isfinite(mixed["total"])
    assert mixed["total"].item() == pytest.approx(reference["total"].item(), rel=3e-2)


def test_channels_last_gives_the_same_loss(tiny_cfg):
    plain, batch, _ = build(tiny_cfg())
    fast, _, _ = build(tiny_cfg("module.channels_last=true"))
    conv = fast.model.backbone.body[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert loss_of(fast, batch)["total"].item() == pytest.approx(loss_of(plain, batch)["total"].item(), rel=1e-4)


class SeenInTraining(L.Callback):
    """What a training step ran on: the backbone input's memory layout and the dtype of the model's outputs."""

    def __init__(self) -> None:
        self.layouts, self.dtypes = set(), set()

    def on_train_start(self, trainer, pl_module):
        def seen(module, inputs, output):
            if module.training:
                self.layouts.add(inputs[0].is_contiguous(memory_format=torch.channels_last) and not inputs[0].is_contiguous())
                self.dtypes.add(output.dtype)

        pl_module.model.backbone.body[0].register_forward_hook(seen)


@pytest.mark.parametrize(
    ("switch", "layout", "dtype"),
    [("trainer.precision=bf16-mixed", False, torch.bfloat16), ("module.channels_last=true", True, torch.float32),
     ("trainer.precision=32-true", False, torch.float32)],
)
def test_a_fit_runs_with_the_switch_on(tiny_cfg, monkeypatch, switch, layout, dtype):
    seen = SeenInTraining()
    monkeypatch.setattr(ConfigLoader, "build_callbacks", lambda self, original=ConfigLoader.build_callbacks: original(self) + [seen])
    value = train(tiny_cfg(switch))
    assert value is not None and torch.isfinite(torch.tensor(value))
    assert seen.layouts == {layout} and seen.dtypes == {dtype}


@pytest.mark.slow
def test_compile_gives_the_same_loss(tiny_cfg):
    plain, batch, _ = build(tiny_cfg())
    fast, _, _ = build(tiny_cfg("module.compile=true"))
    assert fast.model._compiled_call_impl is not None
    assert loss_of(fast, batch)["total"].item() == pytest.approx(loss_of(plain, batch)["total"].item(), rel=1e-4)
    assert set(fast.state_dict()) == set(plain.state_dict())  # checkpoints load with the switch on or off


def test_mixed_precision_with_clipping_gets_an_unfused_optimizer(tiny_cfg):
    assert ConfigLoader(tiny_cfg()).build_optimizer_factory().keywords["fused"] is True
    assert ConfigLoader(tiny_cfg("trainer.precision=bf16-mixed")).build_optimizer_factory().keywords["fused"] is False
    unclipped = tiny_cfg("trainer.precision=bf16-mixed", "trainer.gradient_clip_val=0")
    assert ConfigLoader(unclipped).build_optimizer_factory().keywords["fused"] is True

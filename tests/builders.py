"""Components built directly, their arguments taken from the default run config (the one source of
defaults) with a test's changes on top."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

from scene_model.tools.compose import compose_run_config

TINY_MODEL = dict(
    d_model=32, nhead=4, num_encoder_layers=1, num_decoder_layers=3, dim_feedforward=64, num_queries=6, denoising=False
)


@functools.cache
def _defaults() -> DictConfig:
    return compose_run_config()


def default_node(key: str) -> dict[str, Any]:
    """The resolved node ``key`` of the default run config as a plain dict (a fresh copy)."""
    return OmegaConf.to_container(OmegaConf.select(_defaults(), key), resolve=True)


def build(key: str, **changes: Any) -> Any:
    """The object of node ``key`` of the default config with ``changes`` (nested dicts merged), built by
    calling each ``_target_`` directly (its errors are raised as they are, not wrapped by Hydra)."""
    return construct(OmegaConf.to_container(OmegaConf.merge(default_node(key), changes)))


def construct(node: Any) -> Any:
    if isinstance(node, list):
        return [construct(item) for item in node]
    if not isinstance(node, dict):
        return node
    args = {k: construct(v) for k, v in node.items() if not k.startswith("_")}
    return get_object(node["_target_"])(**args) if "_target_" in node else args


def datamodule(root: str | Path, **changes: Any) -> Any:
    """DancetrackDataModule over ``root`` without synthetic generation, extra train sets and loader workers,
    a window every 3rd frame of its short sequences."""
    base = {"root": str(root), "synthetic": None, "extra_train_sets": 0, "train_stride": 3, "num_workers": 0, "chain_len": 1}
    return build("data", **{**base, **changes})


def tiny_model(backbone: dict | None = None, **changes: Any) -> Any:
    """A small SceneModel (resnet18 to stride 16, d_model 32) on the default config's other settings."""
    return build("model", backbone={"out_layer": 3, **(backbone or {})}, **{**TINY_MODEL, **changes})


def synthetic_spec(**changes: Any) -> dict[str, Any]:
    """``data.synthetic`` of the default config with ``changes``."""
    return {**default_node("data.synthetic"), **changes}


def run_model(model: Any, frames: Any, padding_mask: Any = None, image_sizes: Any = None, denoising: Any = None,
              frame_indices: Any = None, tracks: Any = None) -> dict[str, Any]:
    """One window through ``model`` as the Lightning module runs it: ``decode(encode(frames, image_sizes), ...)``."""
    return model.decode(model.encode(frames, image_sizes), padding_mask, frame_indices, denoising, tracks)

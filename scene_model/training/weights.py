"""Whether a checkpoint's weights fit a model, said in one message naming what differs, and loading them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from scene_model.errors import CheckpointError

# Keys of the run config that decide the shapes of the model's tensors.
ARCHITECTURE_KEYS = (
    "model.backbone.name", "model.backbone.out_layer", "model.num_classes", "model.num_queries", "model.d_model",
    "model.nhead", "model.num_encoder_layers", "model.num_decoder_layers", "model.dim_feedforward",
    "model.box_pool", "model.box_stage", "model.denoising", "association._target_", "association.link_dim",
    "association.dim", "association.layers", "association.vocabulary", "association.history",
)

def check_fits(
    checkpoint: Mapping[str, Any], model_state: Mapping[str, Tensor], config: Mapping | None, source: Any,
    strict: bool = True,
) -> None:
    """Raise CheckpointError when ``checkpoint['state_dict']`` cannot be loaded into ``model_state``.

    The message names the architecture keys of the run config that differ (when both configs are
    known) and the tensors that are missing, unexpected (both only when ``strict``) or of another shape.
    """
    saved = checkpoint["state_dict"]
    missing = [k for k in model_state if k not in saved] if strict else []
    unexpected = [k for k in saved if k not in model_state] if strict else []
    reshaped = [k for k in model_state if k in saved and tuple(saved[k].shape) != tuple(model_state[k].shape)]
    if not (missing or unexpected or reshaped):
        return
    problems = []
    saved_config = (checkpoint.get("hyper_parameters") or {}).get("config")
    differing = config_differences(saved_config, config) if saved_config and config else []
    if differing:
        problems.append("its " + ", ".join(differing))
    if reshaped:
        k = reshaped[0]
        problems.append(
            f"{len(reshaped)} tensor(s) of another shape (e.g. {k}: {list(saved[k].shape)} there, "
            f"{list(model_state[k].shape)} here)"
        )
    if missing:
        problems.append(f"{len(missing)} tensor(s) missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unknown tensor(s) (e.g. {unexpected[0]})")
    raise CheckpointError(
        f"checkpoint {source} was written by another model: {'; '.join(problems)}. "
        "Run with the model settings it was trained with (its config_resolved.yaml), or start without ckpt_path"
    )


def config_differences(saved: Mapping, current: Mapping) -> list[str]:
    """'model.d_model=256 there, 128 here' for each architecture key whose value differs."""
    differences = []
    for key in ARCHITECTURE_KEYS:
        there, here = _select(saved, key), _select(current, key)
        if there != here:
            differences.append(f"{key}={there} there, {here} here")
    return differences


def _select(config: Mapping, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def restore_weights(module: torch.nn.Module, checkpoint: dict[str, Any], source: Any, config: Any = None) -> None:
    """Load ``checkpoint``'s weights into ``module``; one CheckpointError naming what differs when they do
    not fit (``config``: the run config ``module`` was built from, to name differing architecture keys)."""
    check_fits(checkpoint, module.state_dict(), config, source)
    module.load_state_dict(checkpoint["state_dict"])

"""Data: DanceTrack-layout reading, windowed clips, clip transforms, collation, the synthetic generator.

The exports are imported on first use, so that ``python -m scene_model.data.synthetic`` runs
without importing Lightning first.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DancetrackDataModule": "scene_model.data.datamodule",
    "SceneBatch": "scene_model.data.types",
    "TargetFrame": "scene_model.data.types",
    "TrackTargets": "scene_model.data.types",
    "collate_tracking": "scene_model.data.collate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

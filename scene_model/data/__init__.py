"""Data: DanceTrack-layout reading, windowed clips, clip transforms, collation, the synthetic generator."""

from scene_model.data.collate import collate_tracking
from scene_model.data.datamodule import DancetrackDataModule
from scene_model.data.types import SceneBatch, TargetFrame, TrackTargets

__all__ = ["DancetrackDataModule", "SceneBatch", "TargetFrame", "TrackTargets", "collate_tracking"]

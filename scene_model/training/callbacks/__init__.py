"""Lightning callbacks of our own: backbone freeze policy and validation visualisation."""

from scene_model.training.callbacks.backbone_freeze import BackboneFreeze
from scene_model.training.callbacks.visualization import ValidationVisualizer

__all__ = ["BackboneFreeze", "ValidationVisualizer"]

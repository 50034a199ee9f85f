"""Lightning callbacks of our own: backbone freeze policy, validation visualisation, tracking evaluation."""

from scene_model.training.callbacks.backbone_freeze import BackboneFreeze
from scene_model.training.callbacks.tracking_eval import TrackingEvaluator
from scene_model.training.callbacks.visualization import ValidationVisualizer

__all__ = ["BackboneFreeze", "TrackingEvaluator", "ValidationVisualizer"]

"""Lightning callbacks of our own: backbone freeze policy, validation visualisation, TensorBoard on resume."""

from scene_model.training.callbacks.backbone_freeze import BackboneFreeze
from scene_model.training.callbacks.tensorboard_resume import TensorBoardResume
from scene_model.training.callbacks.visualization import ValidationVisualizer

__all__ = ["BackboneFreeze", "TensorBoardResume", "ValidationVisualizer"]

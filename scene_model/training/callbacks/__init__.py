"""Lightning callbacks of what learns: backbone freeze policy, validation pictures, tracking evaluation,
non-finite step guard, final metrics with the hyperparameters."""

from scene_model.training.callbacks.backbone_freeze import BackboneFreeze
from scene_model.training.callbacks.hparams_summary import HParamsSummary
from scene_model.training.callbacks.non_finite import SkipNonFiniteSteps
from scene_model.training.callbacks.tracking_eval import TrackingEvaluator
from scene_model.training.callbacks.visualization import ValidationVisualizer

__all__ = ["BackboneFreeze", "HParamsSummary", "SkipNonFiniteSteps", "TrackingEvaluator", "ValidationVisualizer"]

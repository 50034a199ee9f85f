"""Lightning callbacks of our own: backbone freeze policy, validation visualisation, tracking
evaluation, TensorBoard continuity on resume, non-finite step guard, final metrics with the hyperparameters,
last checkpoint on SIGTERM/SIGINT, the progress bar closed when a run stops."""

from scene_model.training.callbacks.backbone_freeze import BackboneFreeze
from scene_model.training.callbacks.hparams_summary import HParamsSummary
from scene_model.training.callbacks.non_finite import SkipNonFiniteSteps
from scene_model.training.callbacks.progress import ProgressBarClosedOnStop
from scene_model.training.callbacks.stop import SaveOnStop
from scene_model.training.callbacks.tensorboard_resume import TensorBoardResume
from scene_model.training.callbacks.tracking_eval import TrackingEvaluator
from scene_model.training.callbacks.visualization import ValidationVisualizer

__all__ = [
    "BackboneFreeze",
    "HParamsSummary",
    "ProgressBarClosedOnStop",
    "SaveOnStop",
    "SkipNonFiniteSteps",
    "TensorBoardResume",
    "TrackingEvaluator",
    "ValidationVisualizer",
]

"""Lightning callbacks of a run's process: last checkpoint on SIGTERM/SIGINT, the progress bar closed
when a run stops, TensorBoard curves that go on where a resumed fit starts."""

from scene_model.runtime.callbacks.progress import ProgressBarClosedOnStop
from scene_model.runtime.callbacks.stop import SaveOnStop
from scene_model.runtime.callbacks.tensorboard_resume import TensorBoardResume

__all__ = ["ProgressBarClosedOnStop", "SaveOnStop", "TensorBoardResume"]

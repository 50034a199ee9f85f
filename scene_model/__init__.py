"""scene_model: end-to-end multi-object tracking on DanceTrack-format video (Hydra + Lightning)."""

__version__ = "0.1.0"

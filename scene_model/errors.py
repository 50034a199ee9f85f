"""User-facing errors: each says what was expected, what was found and where (file, line or key).

The entry point prints these as one message without a traceback.
"""


class SceneModelError(Exception):
    """Base class for errors a user can fix (bad data, bad config, missing files)."""


class DataFormatError(SceneModelError):
    """The data on disk does not follow the MOTChallenge / DanceTrack layout."""


class ConfigError(SceneModelError):
    """A configuration key is unknown, missing or has the wrong type or value."""


class CheckpointError(SceneModelError):
    """A checkpoint cannot be read or does not fit the model."""


class DivergenceError(SceneModelError):
    """Too many optimisation steps in a row had a non-finite loss or gradient."""


class OutputError(SceneModelError):
    """A file of the run cannot be written: the disk is full, read-only or not ours to write."""

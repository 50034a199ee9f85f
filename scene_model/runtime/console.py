"""What a run prints: its one-line error last on stderr, and none of Lightning's notes that say nothing
to our users.

Hydra's job logging (``conf/hydra/default.yaml``) writes INFO and WARNING to stdout, ERROR to stderr as
the bare line (``ErrorType: message``) and everything to ``<run>/train.log``; ``BelowLevel`` is the filter
that keeps errors off stdout. ``quiet_lightning`` drops, through Python's logging filters and warning
filters, Lightning's advertisements (litlogger, litmodels), its note on loading the train loader to
count steps, its ``Received SIGTERM`` (which it also says on SIGINT) and ``Detected KeyboardInterrupt`` (which
it says on SIGTERM outside its loops, where ``signals`` stops the run with a KeyboardInterrupt): the run's own
stop line names the signal that came. And torch's deprecation of ``LeafSpec``, which Lightning uses, and
Lightning's doubt about the length of an iterable data set (the evaluation windows', which is exact).
"""

from __future__ import annotations

import logging
import warnings

# Loggers the messages below are written to (rank_zero_info's, and the signal connector's).
LIGHTNING_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch.trainer.connectors.signal_connector",
)
QUIET_MESSAGES = (
    "💡 Tip:",
    "Loading `train_dataloader` to estimate number of stepping batches",
    "Received SIGTERM",
    "Detected KeyboardInterrupt",
)
QUIET_WARNINGS = (
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
    # The evaluation windows are an iterable of whole batches that loader workers share out exactly
    # (data.datamodule.EvalBatches): their length is right with any number of workers.
    (r"Your `IterableDataset` has `__len__` defined", UserWarning),
)


class BelowLevel(logging.Filter):
    """Passes records below ``level`` (a name or number): stdout's share when errors go to stderr."""

    def __init__(self, level: str | int) -> None:
        super().__init__()
        self.level = logging.getLevelName(level) if isinstance(level, str) else level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


class QuietLightning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(quiet in message for quiet in QUIET_MESSAGES)


def quiet_lightning() -> None:
    """Install the filters (once per process)."""
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietLightning) for f in logger.filters):
            logger.addFilter(QuietLightning())
    for message, category in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)

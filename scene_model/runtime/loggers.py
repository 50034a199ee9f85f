"""Logger factories for conf/logger/ where a Lightning logger needs a decision made at start.

``wandb_logger``: Weights & Biases offline (run files under the run directory, ``wandb sync`` later)
unless a project is set and this machine is logged in (``wandb login`` or ``WANDB_API_KEY``).
"""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger


def wandb_logged_in() -> bool:
    """An API key in ``WANDB_API_KEY`` or in the netrc file ``wandb login`` writes for the W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return path.is_file() and netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_logger(project: str | None, offline: bool | None, **kwargs: Any) -> WandbLogger:
    """A WandbLogger; ``offline`` None: online only with a ``project`` and a login."""
    if offline is None:
        offline = project is None or not wandb_logged_in()
    return WandbLogger(project=project or "scene_model", offline=offline, **kwargs)

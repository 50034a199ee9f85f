"""SIGTERM and SIGINT (``scancel``, ``kill``, Kubernetes, systemd, Ctrl+C): a run stops at the next step,
keeps ``last.ckpt`` and exits with 128 + the signal number, so that a script or scheduler sees it did
not finish.

During Lightning's loops, Lightning's own SIGTERM handler stops the loop at the next step boundary
(``SIGTERMException``) and ``SaveOnStop`` writes ``last.ckpt`` there; a first SIGINT takes the same
way, a second one stops at once (``KeyboardInterrupt``). Outside the loops (reading data, building
the model) either signal stops at once. Under SLURM through submitit nothing here is installed:
submitit owns the requeue signal and the handlers (see ``slurm.py``).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Records the first stop signal; ``received`` is its number (None while none came)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.received is None
        if first:
            self.received = signum
        current = signal.getsignal(signal.SIGTERM)
        in_loop = callable(current) and current != self._handle  # Lightning's handler, which also calls this one
        if in_loop and (signum == signal.SIGTERM or first):
            if signum == signal.SIGINT:
                current(signal.SIGTERM, frame)  # stop at the next step, as on SIGTERM
            return
        raise KeyboardInterrupt

    @property
    def exit_code(self) -> int | None:
        return None if self.received is None else 128 + self.received


STOP = StopSignals()


@contextlib.contextmanager
def stop_signals(enabled: bool = True) -> Iterator[StopSignals]:
    """Handle SIGTERM and SIGINT inside the block (only in the main thread, and only when ``enabled``)."""
    STOP.received = None
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield STOP
        return
    STOP.install()
    try:
        yield STOP
    finally:
        STOP.restore()


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name

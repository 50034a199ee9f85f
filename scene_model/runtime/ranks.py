"""A process of a multi-process run (DDP) that fails or dies ends the whole run within seconds, with one
line naming its rank and why.

- A rank that fails (an error it raises) writes its one line to ``<run>/.ranks/<rank>.txt`` before it
  exits (``RANKS.report``); the ranks share the run directory.
- Rank 0 of a run whose other processes it started itself (Lightning's default launcher for
  ``strategy=ddp``: this script run again per device) watches them (``ChildWatch``). This replaces
  Lightning's own observer, which SIGKILLs rank 0 up to 5 s after a child died, before it can say
  which one or why. When a child dies, the other children are killed (they wait in a collective that
  will not complete) and rank 0's fit fails at once on gloo, in its next collective; if rank 0 is
  still busy ``GRACE_S`` seconds later (stuck in an NCCL collective) the watch prints the line itself
  and ends the process.
- A rank whose collective fails because another rank is gone (``lost_rank``) names that rank's cause:
  its line in ``.ranks/``, else the child's signal or exit status, else that the connection was lost.
- Where no process sees another die (ranks on other machines, NCCL), a collective waits at most
  ``trainer.strategy.timeout`` (conf/trainer/ddp.yaml: 5 minutes, below NCCL's own 10 to 30).

A run stopped by SIGTERM or SIGINT is left to ``signals`` (its ranks stop together at a step).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch.distributed

from scene_model.errors import SceneModelError
from scene_model.outputs import write_text_atomically
from scene_model.runtime.signals import STOP

log = logging.getLogger(__name__)

GRACE_S = 3.0  # how long a child's death may go unnoticed by rank 0's main thread before the watch ends it
POLL_S = 0.2
# What gloo and NCCL say when the other end of a collective is gone.
LOST_PEER = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "gloo", "NCCL", "nccl")


class RankError(SceneModelError):
    """Another process of the run failed or died; the run was stopped."""


def lost_connection(err: BaseException) -> bool:
    """Whether ``err`` (or what it was raised from) is a collective that failed because a peer is gone."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, torch.distributed.DistError) or (
            isinstance(err, RuntimeError) and any(marker in str(err) for marker in LOST_PEER)
        ):
            return True
        err = err.__cause__ or err.__context__
    return False


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def exit_cause(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with status {code}"


@dataclass
class DeadChild:
    rank: int
    pid: int
    code: int


class ChildWatch(threading.Thread):
    """Rank 0's watch over the processes it started (``procs[i]`` is global rank ``first_rank + i``)."""

    def __init__(self, ranks: RankState, procs: list[subprocess.Popen], first_rank: int) -> None:
        super().__init__(daemon=True, name="rank-watch")
        self.ranks, self.procs, self.first_rank = ranks, procs, first_rank
        self.lock = threading.Lock()
        self.dead: DeadChild | None = None
        self.finished = threading.Event()  # the run ended (the main thread no longer needs watching)
        self.handling = threading.Event()  # the main thread is reporting a failure itself

    def first_dead(self) -> DeadChild | None:
        """The first child found dead of its own (not killed by us); every later call gives the same one."""
        with self.lock:
            if self.dead is None:
                for i, proc in enumerate(self.procs):
                    code = proc.poll()
                    if code not in (None, 0):
                        self.dead = DeadChild(self.first_rank + i, proc.pid, code)
                        break
            return self.dead

    def kill_children(self) -> None:
        """SIGKILL the children still running (they wait in a collective that cannot complete) and reap them."""
        self.first_dead()  # a child that died of its own is recorded before the others are killed
        with self.lock:
            for proc in self.procs:
                if proc.poll() is None:
                    proc.kill()
            for proc in self.procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=GRACE_S)

    def run(self) -> None:
        while not self.finished.wait(POLL_S):
            if STOP.received is not None or self.first_dead() is None:
                continue
            self.kill_children()
            deadline = time.monotonic() + GRACE_S
            while time.monotonic() < deadline:
                if self.handling.is_set() or self.finished.is_set():
                    return
                time.sleep(POLL_S)
            # The main thread did not notice (it waits in a collective that never fails): say it and end here.
            err = self.ranks.lost_rank(None, wait=False)
            log.error(f"{type(err).__name__}: {err}")
            for handler in logging.getLogger().handlers:
                handler.flush()
            sys.stderr.flush()
            os._exit(1)


class RankState:
    """This process's place in the run: its rank, the run's size, where failures are reported."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """No run of several processes (yet): nothing is reported or watched."""
        self.rank, self.world_size = 0, 1
        self.directory: Path | None = None
        self.started = time.time()
        self.watch: ChildWatch | None = None

    @property
    def several(self) -> bool:
        return self.world_size > 1 and self.directory is not None

    def attach(self, output_dir: str | Path) -> None:
        self.reset()
        self.directory = Path(output_dir) / ".ranks"

    def _update(self, trainer: L.Trainer) -> None:
        self.rank, self.world_size = trainer.global_rank, trainer.world_size

    def failed_lines(self) -> dict[int, tuple[float, str]]:
        """{rank: (when, its line)} of the other ranks that reported a failure since this run started."""
        found: dict[int, tuple[float, str]] = {}
        if self.directory is None or not self.directory.is_dir():
            return found
        for path in self.directory.glob("*.txt"):
            with contextlib.suppress(OSError, ValueError):
                rank, when = int(path.stem), path.stat().st_mtime
                if rank != self.rank and when >= self.started - 1:
                    found[rank] = (when, path.read_text().strip())
        return found

    def report(self, line: str) -> None:
        """Tell the other ranks why this one failed."""
        if self.several:
            with contextlib.suppress(SceneModelError, OSError):
                write_text_atomically(self.directory / f"{self.rank}.txt", line + "\n", "the failure of this rank")

    def lost_rank(self, err: BaseException | None, wait: bool = True) -> RankError | None:
        """The RankError to report instead of ``err`` when another rank failed or died first (``err`` is
        then, as a rule, this rank's collective failing): its reported line, else its signal or exit
        status (children of this process), else the lost connection itself. None when ``err`` is this
        rank's own failure. With ``wait``, a lost connection waits up to ``GRACE_S`` for the cause."""
        if not self.several:
            return None
        lost = err is None or lost_connection(err)
        deadline = time.monotonic() + (GRACE_S if wait and lost else 0)
        while True:
            dead = self.watch.first_dead() if self.watch is not None else None
            failed = self.failed_lines()
            if dead is not None or failed or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        of = f"of {self.world_size}"
        if dead is not None and dead.rank in failed:
            return RankError(f"rank {dead.rank} {of} failed: {failed[dead.rank][1]}; the other ranks were stopped")
        if failed:
            rank = min(failed, key=lambda r: failed[r][0])  # the first to fail
            return RankError(f"rank {rank} {of} failed: {failed[rank][1]}; the other ranks were stopped")
        if dead is not None:
            return RankError(f"rank {dead.rank} {of} (pid {dead.pid}) {exit_cause(dead.code)}; the other ranks were stopped")
        if lost:
            return RankError(
                f"rank {self.rank} {of} lost the connection to another rank ({first_line(err)}); "
                "the other ranks' logs say why"
            )
        return None

    def stop_children(self) -> None:
        if self.watch is not None:
            self.watch.handling.set()
            self.watch.kill_children()


RANKS = RankState()


def _watch_children(procs: list[subprocess.Popen], trainer: L.Trainer) -> None:
    RANKS._update(trainer)
    RANKS.watch = ChildWatch(RANKS, procs, trainer.global_rank + 1)
    RANKS.watch.start()


@contextlib.contextmanager
def watching_ranks(trainer: L.Trainer, output_dir: str | Path) -> Iterator[RankState]:
    """Around the trainer's fit, validate and test: rank 0 watches the processes it starts (instead of
    Lightning's observer); on the way out a failure of this rank is reported to the others, and the
    children still running are stopped."""
    from lightning.pytorch.strategies.launchers import subprocess_script

    RANKS.attach(output_dir)
    original = getattr(subprocess_script, "_launch_process_observer", None)
    if original is not None:  # Lightning's, started after the children; ours instead
        subprocess_script._launch_process_observer = lambda procs: _watch_children(procs, trainer)
    try:
        yield RANKS
    except BaseException:
        if RANKS.watch is not None:
            RANKS.watch.handling.set()  # this thread reports the failure (run.main)
        RANKS._update(trainer)
        raise
    finally:
        if original is not None:
            subprocess_script._launch_process_observer = original
        if RANKS.watch is not None:
            RANKS.watch.finished.set()

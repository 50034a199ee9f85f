"""What every ``python -m scene_model.tools.*`` command shares with ``train.py``: a mistake the user can
fix ends the command with one line on stderr, ``ErrorType: what is wrong, where, what to do``, and exit
status 1, and what the command will write is checked before any scoring or tracking starts.

``ToolParser`` is argparse's parser with usage mistakes as such a line (``ConfigError: argument --seeds:
...``), output flags (``add_output``: a file or a folder the command writes) probed for writing as the
arguments are parsed, and the ``--device`` flag checked against the devices there are. ``tool_main``
wraps a command's ``main``: the project's errors (as ``train.py`` finds them, a refused write included)
and an ``OSError`` on a path are printed as that line, without a traceback; Ctrl+C is ``stopped by
SIGINT`` and exit status 130; anything else is a bug and keeps its traceback. The project's log lines
(e.g. the progress of data sets being generated) go to stderr.
"""

from __future__ import annotations

import argparse
import functools
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import torch

from scene_model.outputs import writable_dir, writable_file, write_os_error
from scene_model.runtime.run import one_line, user_error
from scene_model.runtime.signals import signal_name

P = ParamSpec("P")
T = TypeVar("T")


def device(text: str) -> str:
    """A ``--device`` value: a device torch knows (cpu, cuda, cuda:1, ...) that is there."""
    try:
        kind = torch.device(text).type
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; expected cpu, cuda or cuda:N") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text}: no CUDA device is available here; use --device cpu")
    return text


class ToolParser(argparse.ArgumentParser):
    """argparse's parser as the tools use it (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outputs: dict[str, tuple[bool, str]] = {}  # dest -> (a folder, what the message calls it)

    def add_output(self, flag: str, folder: bool = False, what: str = "", **kwargs: Any) -> argparse.Action:
        """A flag naming a file (``folder``: a folder) that the command writes, probed for writing when the
        arguments are parsed (``outputs.writable_file``; a folder is created, ``writable_dir``), so that a path
        that cannot be written is one ``OutputError`` line before any work (``what`` names it there; default:
        the flag)."""
        action = self.add_argument(flag, type=Path, **kwargs)
        self.outputs[action.dest] = (folder, what or flag)
        return action

    def add_device(self) -> argparse.Action:
        return self.add_argument("--device", type=device, default="cuda" if torch.cuda.is_available() else "cpu",
                                 help="cpu, cuda, cuda:1, ... (default: cuda where there is one)")

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        parsed = super().parse_args(args, namespace)
        # Files first: their check creates nothing, a folder's creates the folder.
        for dest, (folder, what) in sorted(self.outputs.items(), key=lambda output: output[1][0]):
            path = getattr(parsed, dest)
            if path is not None:
                (writable_dir if folder else writable_file)(path, what)
        return parsed

    def error(self, message: str) -> NoReturn:
        """A usage mistake (an unknown flag, a value a flag does not accept): one line, exit status 1."""
        sys.stdout.flush()
        self.exit(1, f"ConfigError: {message}; see {self.prog} --help\n")


def error_line(err: BaseException) -> str | None:
    """The one line of a mistake the user can fix: a project error (``run.user_error``: also a refused write)
    or an ``OSError`` on a path (``FileNotFoundError: <path>: No such file or directory``); None for
    anything else."""
    found = user_error(err)
    if found is not None:
        return one_line(found)
    on_path = write_os_error(err, errnos=None)
    if on_path is not None and on_path.filename:
        return f"{type(on_path).__name__}: {on_path.filename}: {on_path.strerror}"
    return None


def log_to_stderr() -> None:
    """The project's INFO lines on stderr, as ``train.py`` shows them, where nothing else handles logging."""
    logger = logging.getLogger("scene_model")
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def tool_main(main: Callable[P, T]) -> Callable[P, T]:
    """A command's ``main``: a mistake the user can fix is its one line on stderr and exit status 1; Ctrl+C is
    ``stopped by SIGINT`` and 130."""

    @functools.wraps(main)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        log_to_stderr()
        try:
            return main(*args, **kwargs)
        except KeyboardInterrupt:  # Ctrl+C: what a tool writes is written whole or not at all
            sys.stdout.flush()
            print(f"stopped by {signal_name(signal.SIGINT)}", file=sys.stderr)
            raise SystemExit(128 + signal.SIGINT) from None
        except Exception as err:
            line = error_line(err)
            if line is None:
                raise
            sys.stdout.flush()  # what was printed before the line comes before it
            print(line, file=sys.stderr)
            raise SystemExit(1) from None

    return run

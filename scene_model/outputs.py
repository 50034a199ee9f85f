"""Writing the files of a run: whole or not at all, and one line naming the file when the disk refuses.

A write that fails part-way (a full disk, a quota) must not leave a damaged file where a good one
was: every file is written to a hidden ``.<name>.partial`` beside it and renamed over it when complete.
An ``OSError`` on the way becomes one error naming the file and the cause (``No space left on device``,
``Read-only file system``, ``Permission denied``), also when a library reports it as something else
(``torch.save`` raises a ``RuntimeError`` whose context is the ``OSError``).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from scene_model.errors import OutputError, SceneModelError

# Causes a user fixes outside the program: space, quota, permissions, a read-only or failing disk.
WRITE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO, errno.ENOTDIR}
)


def write_os_error(err: BaseException, errnos: frozenset[int] | None = WRITE_ERRNOS) -> OSError | None:
    """The ``OSError`` behind ``err`` (itself, or its cause or context) with one of ``errnos`` (None: any
    errno), else None."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno is not None and (errnos is None or err.errno in errnos):
            return err
        err = err.__cause__ or err.__context__
    return None


def cannot_write(path: str | os.PathLike, err: OSError, what: str = "") -> str:
    """'cannot write checkpoint <path>: No space left on device'."""
    cause = err.strerror or errno.errorcode.get(err.errno or 0) or str(err)
    return f"cannot write {what + ' ' if what else ''}{path}: {cause}"


@contextlib.contextmanager
def writing(path: str | os.PathLike, what: str = "", error: type[SceneModelError] = OutputError) -> Iterator[None]:
    """Turn an ``OSError`` inside the block (a write to ``path``) into ``error('cannot write <what> <path>: <cause>')``."""
    try:
        yield
    except SceneModelError:
        raise
    except Exception as err:
        found = write_os_error(err, errnos=None)
        if found is None:
            raise
        raise error(cannot_write(path, found, what)) from None


def partial_path(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place (same directory, hidden)."""
    return path.with_name(f".{path.name}.partial")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, what: str = "", error: type[SceneModelError] = OutputError) -> Iterator[Path]:
    """Yield the partial path to write ``path`` to; when the block ends cleanly it is flushed to disk and
    renamed over ``path``, on any failure removed, ``path`` left as it was. A refused write raises
    ``error`` naming ``path``."""
    path = Path(path)
    partial = partial_path(path)
    with writing(path, what, error):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            yield partial
            with open(partial, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(partial, path)
        except BaseException:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            raise


def write_atomically(
    path: str | os.PathLike, write: Callable[[Path], object], what: str = "", error: type[SceneModelError] = OutputError
) -> Path:
    """``write(partial)`` inside ``atomic_file``: ``path`` is the new file whole, or the old one."""
    with atomic_file(path, what, error) as partial:
        write(partial)
    return Path(path)


def write_text_atomically(path: str | os.PathLike, text: str, what: str = "") -> Path:
    return write_atomically(path, lambda partial: partial.write_text(text), what)


PROBE_BYTES = 4096  # one block: an empty file still fits on a full disk, a block does not


def _probe(folder: Path) -> None:
    """Write, flush and remove a probe block in ``folder``."""
    probe = folder / f".probe-{os.getpid()}"
    try:
        with open(probe, "wb") as handle:
            handle.write(bytes(PROBE_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)


def writable_dir(path: str | os.PathLike, what: str = "", error: type[SceneModelError] = OutputError) -> Path:
    """Create the folder ``path`` (and its parents) and write, flush and remove a probe file in it, so that
    a folder that cannot be written (a file of that name, a read-only or full disk, no permission) is
    found before the work whose results go there, as ``error('cannot write <what> <path>: <cause>')``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise error(f"cannot write {what + ' ' if what else ''}{path}: it is a file, not a folder")
    with writing(path, what, error):
        path.mkdir(parents=True, exist_ok=True)
        _probe(path)
    return path


def writable_file(path: str | os.PathLike, what: str = "", error: type[SceneModelError] = OutputError) -> Path:
    """``writable_dir`` for the file ``path``, creating nothing: the nearest of its folders that exists is
    probed (the file itself is written later, whole, by ``atomic_file``, which creates the folders
    missing). A refusal names ``path``: a folder of that name, a file where a folder belongs, a read-only
    or full disk, no permission."""
    path = Path(path)
    if path.is_dir():
        raise error(f"cannot write {what + ' ' if what else ''}{path}: it is a folder, not a file")
    with writing(path, what, error):
        _probe(next(folder for folder in path.absolute().parents if folder.exists()))
    return path

"""A function for peak-memory tests, in a module light enough for a fresh process to import quickly."""

from __future__ import annotations

from collections.abc import Callable


def allocate(mib: int) -> Callable[[], int]:
    """A call that allocates and touches ``mib`` MiB."""

    def touch() -> int:
        block = bytearray(mib * 2**20)
        block[::4096] = b"x" * len(block[::4096])
        return len(block)

    return touch

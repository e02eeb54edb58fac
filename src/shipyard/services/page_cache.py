"""The OS page cache, where the platform lets us see it: probes of what it holds, and hints.

Both are Linux calls (``preadv`` with ``RWF_NOWAIT``, ``posix_fadvise``); elsewhere (macOS)
a probe says "held" and a hint does nothing, so callers take their plain path.
"""

from __future__ import annotations

import os

__all__ = ["advise", "held"]


def held(fd: int, offset: int) -> bool:
    """Whether the byte at ``offset`` of an open file is in the page cache.

    A read that may not wait says so; where the platform has no such read, True.
    """
    try:
        os.preadv(fd, [bytearray(1)], offset, os.RWF_NOWAIT)
    except BlockingIOError:
        return False
    except (OSError, AttributeError):  # no RWF_NOWAIT here: assume a warm cache
        return True
    return True


def advise(fd: int, offset: int, length: int, advice: str) -> None:
    """``posix_fadvise(fd, offset, length, os.<advice>)`` where the platform has it.

    A hint, never needed: without it the reads are the same, only slower from a cold disk.
    """
    fadvise = getattr(os, "posix_fadvise", None)
    if fadvise is not None:
        fadvise(fd, offset, length, getattr(os, advice))

"""Sortable ids (UUIDv7) and UTC timestamps."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime

__all__ = ["as_utc", "host_label", "new_id", "utcnow"]

_lock = threading.Lock()
_last = [0, 0]  # last millisecond, last counter: keeps ids from one process increasing


def new_id() -> str:
    """Return a new UUIDv7 as 32 lowercase hex digits; later ids sort after earlier ones."""
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last[0]:
            ms = _last[0]
            counter = _last[1] + 1
            if counter >= 1 << 12:  # counter overflow: borrow the next millisecond
                ms += 1
                counter = 0
        else:
            counter = int.from_bytes(os.urandom(2), "big") & 0x3FF
        _last[0], _last[1] = ms, counter
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand
    return f"{value:032x}"


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """The same instant as an aware UTC datetime; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def host_label(name: str, limit: int = 255) -> str:
    """A host name as records and servers take it: ASCII letters, digits and ``-_.`` only.

    Whatever a machine calls itself, the label matches the API's host pattern.
    """
    return "".join(c for c in name if c.isascii() and (c.isalnum() or c in "-_."))[:limit] or "host"

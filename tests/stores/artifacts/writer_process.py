"""A blob writer that test_crash_safety runs in its own process.

python writer_process.py slow ROOT {put_stream|stage} MIDWAY SIGNAL_FILE
    streams 200 MiB into the local store at ROOT; once MIDWAY bytes are staged it
    touches SIGNAL_FILE and slows to a trickle, waiting to be killed.

python writer_process.py race ROOT {put_bytes|put_stream} CONTENT_FILE READY START
    touches READY, waits for the file START, stores the bytes of CONTENT_FILE and
    prints the digest and whether it was new, as JSON.
"""

from __future__ import annotations

import io
import json
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from shipyard.stores.artifacts.content import ContentStore
from shipyard.stores.artifacts.local import LocalBlobStore

MIB = 1024 * 1024
TOTAL = 200 * MIB
UNFINISHED_KEY = f"blobs/00/{'0' * 62}"


def _chunks(midway: int, signal: Path) -> Iterator[bytes]:
    block = random.Random(7).randbytes(MIB)
    for sent in range(0, TOTAL, MIB):
        if sent >= midway:
            signal.touch()
            time.sleep(0.05)  # the killer has ~8 s to strike before the stream ends
        yield block


class _GeneratedStream:
    """A read-only stream over generated chunks, so no 200 MiB source file is needed."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks

    def read(self, size: int = -1) -> bytes:
        return next(self._chunks, b"")


def slow(root: str, how: str, midway: str, signal: str) -> None:
    store = ContentStore(LocalBlobStore(root))
    stream = _GeneratedStream(_chunks(int(midway), Path(signal)))
    if how == "put_stream":
        store.put_stream(stream)  # type: ignore[arg-type]
    else:
        with store.blobs.stage() as staged:
            while chunk := stream.read(MIB):
                staged.write(chunk)
            staged.commit(UNFINISHED_KEY)
    sys.exit("the writer finished: it was meant to be killed halfway")


def race(root: str, how: str, content_file: str, ready: str, start: str) -> None:
    store = ContentStore(LocalBlobStore(root))
    content = Path(content_file).read_bytes()
    Path(ready).touch()
    go = Path(start)
    while not go.exists():
        time.sleep(0.001)
    put = store.put_bytes if how == "put_bytes" else lambda data: store.put_stream(io.BytesIO(data))
    info = put(content)
    print(json.dumps({"digest": info.digest, "new": info.new}))


if __name__ == "__main__":
    command, *arguments = sys.argv[1:]
    {"slow": slow, "race": race}[command](*arguments)

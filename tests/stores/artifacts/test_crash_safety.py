"""Local blobs survive writers that are SIGKILLed mid-write and writers that race each other."""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from blake3 import blake3

from shipyard.stores.artifacts.content import ContentStore
from shipyard.stores.artifacts.local import TMP_DIR, LocalBlobStore

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
WRITER = Path(__file__).with_name("writer_process.py")
# The children import the very shipyard this test imported, installed or not.
SRC = str(Path(inspect.getfile(ContentStore)).resolve().parents[3])


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start writer processes; any still running when the test ends is killed."""
    children: list[subprocess.Popen[str]] = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}

    def start(*arguments: object) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [sys.executable, str(WRITER), *map(str, arguments)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        children.append(child)
        return child

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
        child.communicate()


def _wait_for(
    condition: Callable[[], bool], children: list[subprocess.Popen[str]], timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for child in children:
            if child.poll() is not None:
                _, err = child.communicate()
                pytest.fail(f"writer exited early with {child.returncode}:\n{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"writers did not get there within {timeout} s")
        time.sleep(0.005)


def _staged_files(store: ContentStore) -> int:
    return store.blobs.clean_staged(older_than=time.time() + 60, dry_run=True)


@pytest.mark.parametrize("how", ["put_stream", "stage"])
def test_writer_killed_mid_write_leaves_no_blob(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]], how: str
) -> None:
    root = tmp_path / "store"
    store = ContentStore(LocalBlobStore(root))
    kept = sorted(store.put_bytes(b"kept %d" % i).digest for i in range(3))
    midway, started = 32 * MIB, tmp_path / "midway"

    writer = spawn("slow", root, how, midway, started)
    _wait_for(started.exists, [writer])
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)

    assert writer.returncode == -signal.SIGKILL
    staged = list((root / TMP_DIR).iterdir())
    assert len(staged) == 1, "the killed writer should have left its staged file"
    assert staged[0].stat().st_size >= midway
    assert sorted(store.digests()) == kept
    assert sorted(store.blobs.list("blobs")) == sorted(map(ContentStore.key_of, kept))
    assert [store.verify(digest) for digest in store.digests()] == [None] * len(kept)

    assert store.blobs.clean_staged(older_than=time.time() + 60, dry_run=False) == 1

    assert _staged_files(store) == 0
    assert sorted(store.digests()) == kept
    assert store.put_bytes(b"after the crash").new is True


@pytest.mark.parametrize("how", ["put_bytes", "put_stream"])
def test_concurrent_writers_of_the_same_content_store_it_once(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]], how: str
) -> None:
    root, ready, go = tmp_path / "store", tmp_path / "ready", tmp_path / "go"
    ready.mkdir()
    content = os.urandom(4 * MIB)
    (tmp_path / "content.bin").write_bytes(content)
    expected = f"blake3:{blake3(content).hexdigest()}"
    LocalBlobStore(root)  # create the root before the race, as `shipyard init` would

    writers = [
        spawn("race", root, how, tmp_path / "content.bin", ready / str(n), go) for n in range(8)
    ]
    _wait_for(lambda: len(list(ready.iterdir())) == len(writers), writers)
    go.touch()
    outputs = [writer.communicate(timeout=60) for writer in writers]

    assert [writer.returncode for writer in writers] == [0] * len(writers), outputs
    results = [json.loads(out) for out, _ in outputs]
    assert {result["digest"] for result in results} == {expected}
    assert sum(result["new"] for result in results) == 1
    store = ContentStore(LocalBlobStore(root))
    assert list(store.digests()) == [expected]
    assert list(store.blobs.list()) == [ContentStore.key_of(expected)]
    assert store.read_bytes(expected) == content
    assert _staged_files(store) == 0


@pytest.mark.parametrize("fsync", [True, False])
@pytest.mark.parametrize("unnamed", [True, False], ids=["unnamed-temp", "named-temp"])
def test_a_put_leaves_no_temporary_file_and_outlives_its_folder(
    tmp_path: Path, fsync: bool, unnamed: bool
) -> None:
    store = LocalBlobStore(tmp_path / "store", fsync=fsync)
    if not unnamed:
        store._tmpfile = False  # as on a file system without O_TMPFILE
    content = ContentStore(store)
    first = content.put_bytes(b"first")
    assert list((store.root / TMP_DIR).iterdir()) == []
    # its folder goes behind the store's back (another process's gc, a person)
    folder = store.root / ContentStore.key_of(first.digest).rsplit("/", 1)[0]
    for blob in folder.iterdir():
        blob.unlink()
    folder.rmdir()
    again = content.put_pieces([b"fi", b"rst"])
    assert again.new is True and again.digest == first.digest
    assert content.read_bytes(first.digest) == b"first"
    assert list((store.root / TMP_DIR).iterdir()) == []

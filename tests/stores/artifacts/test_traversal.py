"""Keys cannot leave the store: traversal spellings and planted symlinks are refused.

Every test runs beside a canary: a sibling folder of the store root holding files with random
content. A refused call must neither return that content nor change anything outside the root.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shipyard.errors import UnsafePathError
from shipyard.stores.artifacts.local import TMP_DIR, LocalBlobStore
from shipyard.stores.artifacts.paths import safe_key

# "{outside}" stands for the absolute path of the canary folder beside the store root.
_ESCAPES = [
    # plain and backslash parents
    "..",
    "../",
    "../secret/canary.txt",
    "../../secret/canary.txt",
    "..\\secret\\canary.txt",
    "..\\/secret/canary.txt",
    "../\\secret/canary.txt",
    "..//secret/canary.txt",
    ".../secret/canary.txt",
    "....//secret/canary.txt",
    "....\\\\secret\\canary.txt",
    "..././secret/canary.txt",
    "...\\.\\secret\\canary.txt",
    # parents hidden behind percent-encoding, single, double and triple, in any case
    "%2e%2e%2fsecret%2fcanary.txt",
    "%2E%2E%2Fsecret%2Fcanary.txt",
    "%2e%2E%2Fsecret/canary.txt",
    "%2e%2e/secret/canary.txt",
    "..%2fsecret%2fcanary.txt",
    "..%2Fsecret/canary.txt",
    ".%2e/secret/canary.txt",
    "%2e./secret/canary.txt",
    "..%5csecret%5ccanary.txt",
    "%2e%2e%5csecret%5ccanary.txt",
    "%252e%252e%252fsecret%252fcanary.txt",
    "%252E%252E%252Fsecret/canary.txt",
    "..%252fsecret/canary.txt",
    "%25252e%25252e%25252fsecret/canary.txt",
    "%%32%65%%32%65/secret/canary.txt",
    # overlong UTF-8 and IIS-style %u escapes
    "%c0%ae%c0%ae/secret/canary.txt",
    "%c0%ae%c0%ae%c0%afsecret/canary.txt",
    "%C0%AE%C0%AE%C0%AFsecret/canary.txt",
    "..%c0%afsecret/canary.txt",
    "..%c1%9csecret/canary.txt",
    "%e0%80%ae%e0%80%ae/secret/canary.txt",
    "%f0%80%80%ae%f0%80%80%ae/secret/canary.txt",
    "%uff0e%uff0e/secret/canary.txt",
    "..%u2215secret/canary.txt",
    "%u002e%u002e%u002fsecret/canary.txt",
    # Unicode look-alikes of dots and slashes
    "\uff0e\uff0e\uff0fsecret\uff0fcanary.txt",
    "\uff0e\uff0e/secret/canary.txt",
    "../secret\uff0fcanary.txt",
    "..\uff0fsecret/canary.txt",
    "..\u2215secret/canary.txt",
    "..\u2044secret/canary.txt",
    "..\u29f8secret/canary.txt",
    "..\uff3csecret/canary.txt",
    "..\u2216secret/canary.txt",
    "\u2024\u2024/secret/canary.txt",
    "\u2025/secret/canary.txt",
    "\ufe52\ufe52/secret/canary.txt",
    "\u3002\u3002/secret/canary.txt",
    "\u0130../secret/canary.txt",
    ".\u0307./secret/canary.txt",
    "..\u200b/secret/canary.txt",
    "\u202e../secret/canary.txt",
    # NUL, control characters and whitespace that some layers strip
    "..\x00/secret/canary.txt",
    "canary.txt\x00.png",
    "\x00",
    "..%00/secret/canary.txt",
    "../secret/canary.txt%00.png",
    "..\n/secret/canary.txt",
    "blob\n",
    "..\r\n/secret/canary.txt",
    "\t../secret/canary.txt",
    " ../secret/canary.txt",
    "../secret/canary.txt ",
    ".. /secret/canary.txt",
    # parameters, fragments and queries that truncate a path in URL parsers
    "..;/secret/canary.txt",
    "..;x=1/secret/canary.txt",
    "blob;/../../secret/canary.txt",
    "#/../secret/canary.txt",
    "blob#../../secret/canary.txt",
    "blob?../../secret/canary.txt",
    # absolute paths, drives, UNC and device paths, URLs
    "/etc/passwd",
    "/etc/shadow",
    "//etc/passwd",
    "/",
    "//",
    "/..",
    "{outside}/canary.txt",
    "/{outside}/canary.txt",
    "{outside}/../secret/canary.txt",
    "//host/share/x",
    "\\\\host\\share\\x",
    "\\\\?\\C:\\Windows\\win.ini",
    "\\\\.\\pipe\\shipyard",
    "\\\\localhost\\c$\\Windows",
    "C:\\Windows\\win.ini",
    "C:/Windows/win.ini",
    "c:secret",
    "\\secret\\canary.txt",
    "file:///etc/passwd",
    "file://{outside}/canary.txt",
    "file://localhost/etc/passwd",
    "FILE:///etc/passwd",
    "s3://other-bucket/blob",
    "memory://other/blob",
    "https://example.com/blob",
    "~/secret",
    "~root/.ssh/id_rsa",
    "$HOME/.ssh/id_rsa",
    "${HOME}",
    # parents and empty or dot segments after a harmless start
    "a/..",
    "a/../",
    "a/../../secret/canary.txt",
    "a/b/../../../secret/canary.txt",
    "a/./../../secret/canary.txt",
    "a/../b",
    "./a",
    "./../secret/canary.txt",
    ".",
    "./",
    "a/.",
    "a/./b",
    "a//b",
    "a/",
    # hidden names, the staging folder included
    ".tmp",
    f"{TMP_DIR}/put-x",
    ".git/config",
    ".ssh/id_rsa",
    ".hidden",
    # keys too long to be honest
    "../" * 400,
    "a/" * 600 + "b",
]
_WRAPPERS = ["{}", "blobs/{}", "blobs/ab/{}", "{}/blob"]


def _corpus() -> list[str]:
    spellings = dict.fromkeys(
        wrapper.format(escape)
        for escape in _ESCAPES
        for wrapper in _WRAPPERS
        if not (escape.startswith("{outside}") and wrapper != "{}")
    )
    return list(spellings)


CORPUS = _corpus()


def test_corpus_is_large_and_distinct() -> None:
    assert len(CORPUS) >= 100
    assert len(set(CORPUS)) == len(CORPUS)


@dataclass
class Jail:
    """A store root with a sibling canary folder whose content must never leak."""

    store: LocalBlobStore
    outside: Path
    canary: bytes

    def key(self, spelling: str) -> str:
        return spelling.replace("{outside}", str(self.outside))

    def snapshot(self) -> dict[str, bytes]:
        """Every file beside the root, with its content."""
        base = self.store.root.parent
        found = {}
        for folder, dirs, files in os.walk(base):
            dirs[:] = [d for d in dirs if Path(folder, d) != self.store.root]
            for name in files:
                path = Path(folder, name)
                found[str(path.relative_to(base))] = path.read_bytes()
        return found


@pytest.fixture(scope="module")
def jail(tmp_path_factory: pytest.TempPathFactory) -> Jail:
    base = tmp_path_factory.mktemp("jail")
    outside = base / "secret"
    (outside / "etc").mkdir(parents=True)
    canary = secrets.token_hex(32).encode()
    (outside / "canary.txt").write_bytes(canary)
    (outside / "etc" / "passwd").write_bytes(canary)
    return Jail(LocalBlobStore(base / "store"), outside, canary)


@pytest.fixture
def untouched(jail: Jail) -> Iterator[Jail]:
    """Check after the test that nothing changed outside the root and nothing was stored."""
    before = jail.snapshot()
    yield jail
    assert jail.snapshot() == before
    assert list(jail.store.list()) == []
    assert list((jail.store.root / TMP_DIR).iterdir()) == []


def _stage_commit(store: LocalBlobStore, key: str) -> bool:
    with store.stage() as staged:
        staged.write(b"planted")
        return staged.commit(key)


OPERATIONS: dict[str, Callable[[LocalBlobStore, str], Any]] = {
    "put": lambda store, key: store.put(key, b"planted"),
    "stage_commit": _stage_commit,
    "open": lambda store, key: store.open(key).read(),
    "exists": lambda store, key: store.exists(key),
    "size": lambda store, key: store.size(key),
    "delete": lambda store, key: store.delete(key),
    "list": lambda store, key: list(store.list(key)),
}
WRITES = {"put", "stage_commit", "delete"}


def _refused(operation: str, store: LocalBlobStore, key: str, canary: bytes) -> None:
    with pytest.raises(UnsafePathError) as raised:
        OPERATIONS[operation](store, key)
    assert canary.decode() not in str(raised.value)


@pytest.mark.parametrize("spelling", CORPUS)
def test_safe_key_refuses_traversal(spelling: str, jail: Jail) -> None:
    with pytest.raises(UnsafePathError):
        safe_key(jail.key(spelling))


@pytest.mark.parametrize("spelling", CORPUS)
@pytest.mark.parametrize("operation", OPERATIONS)
def test_local_store_refuses_traversal(untouched: Jail, operation: str, spelling: str) -> None:
    key = untouched.key(spelling)
    if operation in WRITES and key.startswith("/"):
        # Writes to an absolute path aim into the jail, so a regression cannot touch the host.
        key = f"{untouched.outside}{key}"

    _refused(operation, untouched.store, key, untouched.canary)


@pytest.mark.parametrize("key", [None, 7, b"blob", Path("blob"), ["blob"]])
def test_non_string_keys_are_refused(key: object) -> None:
    with pytest.raises(UnsafePathError, match="must be a string"):
        safe_key(key)


# --- symlinks planted inside the root --------------------------------------------------


@pytest.fixture
def planted(tmp_path: Path) -> Iterator[Jail]:
    """A store whose root holds symlinks to a file, a folder and a missing file outside it."""
    outside = tmp_path / "secret"
    outside.mkdir()
    canary = secrets.token_hex(32).encode()
    (outside / "canary.txt").write_bytes(canary)
    jail = Jail(LocalBlobStore(tmp_path / "store"), outside, canary)
    root = jail.store.root
    jail.store.put("inside.txt", b"inside")
    (root / "blobs" / "ab").mkdir(parents=True)
    (root / "to-file").symlink_to(outside / "canary.txt")
    (root / "to-folder").symlink_to(outside, target_is_directory=True)
    (root / "to-missing").symlink_to(outside / "planted.txt")
    (root / "blobs" / "ab" / "to-file").symlink_to(outside / "canary.txt")
    (root / "to-inside").symlink_to(root / "inside.txt")
    before = jail.snapshot()
    yield jail
    assert jail.snapshot() == before
    assert (outside / "canary.txt").read_bytes() == canary
    assert not (outside / "planted.txt").exists()


SYMLINKED_KEYS = [
    "to-file",
    "to-folder",
    "to-folder/canary.txt",
    "to-folder/new.txt",
    "to-missing",
    "blobs/ab/to-file",
    "to-inside",
]


@pytest.mark.parametrize("key", SYMLINKED_KEYS)
@pytest.mark.parametrize("operation", OPERATIONS)
def test_symlinks_in_the_root_are_not_followed(planted: Jail, operation: str, key: str) -> None:
    _refused(operation, planted.store, key, planted.canary)


def test_listing_does_not_descend_into_a_symlinked_folder(planted: Jail) -> None:
    keys = list(planted.store.list())

    assert not [key for key in keys if key.startswith("to-folder/")]
    assert "canary.txt" not in {key.rsplit("/", 1)[-1] for key in keys}

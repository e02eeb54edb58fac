"""Cache keys of task calls, and task results stored by content digest.

A task call's cache key hashes the task's code (its source text, or its bytecode and
constants when there is no source; plus default and closure values that pickle), the
content of its plain inputs, and for each upstream input either the upstream result's
digest (a cached upstream task, whose result is always stored) or the upstream call's own
cache key. The same code on the same inputs gives the same key in every run.

A dataset version passed to a task (a ``DatasetHandle`` from ``datasets.get`` or a
``DatasetVersion``) counts by its content digest, not by its reference: a new version of
``wine`` makes a handle got with ``"wine@latest"`` key differently. A string is hashed as
text, even one that reads like ``wine@latest``: the engine cannot tell a reference from
any other string. What the task does with it is seen instead: each reference that may
move (``wine@latest``, ``wine@prod``) the task resolves while it runs is stored with its
result, with the content it gave (``TaskResult``), and the result is reused only while
every one of them still gives the same content.
"""

from __future__ import annotations

import inspect
import marshal
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from blake3 import blake3

from shipyard.domain.datasets import DatasetVersion
from shipyard.errors import TaskResultError
from shipyard.services.datasets import DatasetHandle
from shipyard.stores.artifacts.content import BlobInfo

__all__ = [
    "DATASET_INPUTS",
    "ResultStore",
    "TaskResult",
    "code_digest",
    "dataset_key",
    "input_digest",
    "load_result",
    "load_task_result",
    "store_result",
]

# The inputs a cache key takes by their data rather than by their pickle.
DATASET_INPUTS = (DatasetHandle, DatasetVersion)


class ResultStore(Protocol):
    """Where results and logs go by digest: the content store, or a server's."""

    def put_bytes(self, data: bytes) -> BlobInfo:
        """Store bytes; identical content is stored once."""
        ...

    def read_bytes(self, digest: str) -> bytes:
        """The verified content of a digest."""
        ...


_codes: dict[Callable[..., Any], str] = {}


def code_digest(fn: Callable[..., Any]) -> str:
    """A digest of a function's code and of the values it closes over (memoised)."""
    found = _codes.get(fn)
    if found is not None:
        return found
    hasher = blake3()
    try:
        hasher.update(inspect.getsource(fn).encode())
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        hasher.update(marshal.dumps(code) if code is not None else repr(fn).encode())
    captured: list[Any] = list(getattr(fn, "__defaults__", None) or ())
    captured += sorted((getattr(fn, "__kwdefaults__", None) or {}).items())
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            captured.append(cell.cell_contents)
        except ValueError:  # an empty cell
            continue
    for value in captured:
        try:
            hasher.update(pickle.dumps(value, protocol=5))
        except Exception:  # unpicklable (a module, a lock): its type stands for it
            hasher.update(repr(type(value)).encode())
    digest = hasher.hexdigest()
    _codes[fn] = digest
    return digest


def dataset_key(value: DatasetHandle | DatasetVersion) -> tuple[str, str]:
    """What a cache key hashes for a dataset input: its version's content digest.

    The content digest covers the version's file paths and their digests, so two
    versions with the same data key alike and a version with new data keys anew; the
    handle's service, the version's number, card and times do not count.
    """
    version = value.version if isinstance(value, DatasetHandle) else value
    return ("__dataset__", version.content_digest)


def input_digest(code: str, inputs: Any) -> str | None:
    """The cache key of a call: its code digest and its inputs' content.

    ``inputs`` holds upstream handles already replaced by ``("__upstream__", digest)``.
    Returns None when an input cannot be pickled (the call is then never cached).
    """
    try:
        data = pickle.dumps(inputs, protocol=5)
    except Exception:
        return None
    hasher = blake3(code.encode())
    hasher.update(data)
    return hasher.hexdigest()


@dataclass(frozen=True, slots=True)
class TaskResult:
    """A task's value with the moving dataset references it resolved, as stored.

    Attributes:
        value: what the task returned.
        dataset_reads: (reference, content digest) of each ``name@latest`` or
            ``name@label`` the task resolved while it ran.
    """

    value: Any
    dataset_reads: tuple[tuple[str, str], ...]


def store_result(
    content: ResultStore, key: str, value: Any, dataset_reads: Sequence[tuple[str, str]] = ()
) -> str:
    """Pickle a task's value into the content store; its digest.

    A value got by resolving moving dataset references is stored as a ``TaskResult``
    with them; any other value as itself.

    Raises:
        TaskResultError: naming the task when the value cannot be pickled.
    """
    import cloudpickle

    reads = tuple((reference, digest) for reference, digest in dataset_reads)
    stored = TaskResult(value, reads) if reads else value
    try:
        data = cloudpickle.dumps(stored, protocol=5)
    except Exception as exc:
        raise TaskResultError(key, f"{type(exc).__name__}: {exc}") from None
    return content.put_bytes(data).digest


def load_result(content: ResultStore, digest: str) -> Any:
    """A stored value, verified against its digest."""
    return load_task_result(content, digest).value


def load_task_result(content: ResultStore, digest: str) -> TaskResult:
    """A stored task value and the moving dataset references it was made from."""
    stored = pickle.loads(content.read_bytes(digest))
    return stored if isinstance(stored, TaskResult) else TaskResult(stored, ())

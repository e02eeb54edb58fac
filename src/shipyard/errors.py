"""The whole error tree of shipyard.

Every error shipyard raises on purpose derives from ``ShipyardError``; callers catch a
category, the CLI maps categories to exit codes and the server maps them to HTTP statuses::

    ShipyardError
    ├── NotFoundError
    │   ├── BlobNotFoundError(digest)
    │   ├── DatasetNotFoundError(reference)
    │   └── ProjectNotFoundError(path)
    ├── AlreadyExistsError
    ├── InvalidArgumentError
    │   ├── InvalidNameError(name, reason)
    │   ├── InvalidReferenceError(reference, reason)
    │   ├── InvalidDigestError(digest)
    │   ├── UnsafePathError(path, reason)
    │   ├── SettingsError(setting, reason)
    │   ├── SourceError(source, reason)
    │   └── DataValidationError(reference, failures)
    ├── ConflictError
    ├── PermissionDeniedError
    ├── NotSupportedError(backend, operation)
    ├── BackendError
    │   ├── CorruptBlobError(digest, actual)
    │   └── StoreUnavailableError(uri, reason)
    └── MissingDependencyError(package, extra)

Messages say what is wrong and what to do next.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExistsError",
    "BackendError",
    "BlobNotFoundError",
    "ConflictError",
    "CorruptBlobError",
    "DataValidationError",
    "DatasetNotFoundError",
    "InvalidArgumentError",
    "InvalidDigestError",
    "InvalidNameError",
    "InvalidReferenceError",
    "MissingDependencyError",
    "NotFoundError",
    "NotSupportedError",
    "PermissionDeniedError",
    "ProjectNotFoundError",
    "SettingsError",
    "ShipyardError",
    "SourceError",
    "StoreUnavailableError",
    "UnsafePathError",
]


class ShipyardError(Exception):
    """Root of every error shipyard raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFoundError(ShipyardError):
    """Something named by the caller does not exist."""


class AlreadyExistsError(ShipyardError):
    """Something the caller wants to create exists already."""


class InvalidArgumentError(ShipyardError):
    """The caller passed a value that can never be right."""


class ConflictError(ShipyardError):
    """The request clashes with the current state (a concurrent change, a wrong state)."""


class PermissionDeniedError(ShipyardError):
    """The caller is not allowed to do this."""


class BackendError(ShipyardError):
    """A store or executor failed, or holds data that is not what it should be."""


class BlobNotFoundError(NotFoundError):
    """No blob with this digest is in the artifact store."""

    def __init__(self, digest: str) -> None:
        super().__init__(f"blob {digest} is not in the artifact store")
        self.digest = digest


class ProjectNotFoundError(NotFoundError):
    """No shipyard project at or above a folder."""

    def __init__(self, path: str) -> None:
        super().__init__(f"no shipyard project at or above {path}: run `shipyard init` there first")
        self.path = path


class DatasetNotFoundError(NotFoundError):
    """No dataset, version or label answers to a reference."""

    def __init__(self, reference: str, detail: str = "") -> None:
        hint = detail or "run `shipyard data list` or `shipyard data versions NAME` to see them"
        super().__init__(f"dataset {reference} does not exist: {hint}")
        self.reference = reference


class InvalidNameError(InvalidArgumentError):
    """A name breaks the naming rule (letters, digits, '-', '_', '.'; no '..')."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"invalid name {name!r}: {reason}")
        self.name = name
        self.reason = reason


class InvalidReferenceError(InvalidArgumentError):
    """A reference such as ``name@3`` or ``name@champion`` is malformed."""

    def __init__(self, reference: str, reason: str) -> None:
        super().__init__(
            f"invalid reference {reference!r}: {reason} "
            "(write NAME, NAME@VERSION, NAME@latest or NAME@ALIAS)"
        )
        self.reference = reference
        self.reason = reason


class InvalidDigestError(InvalidArgumentError):
    """A digest is not of the form ``blake3:<64 hex digits>``."""

    def __init__(self, digest: str) -> None:
        super().__init__(f"invalid digest {digest!r}: expected 'blake3:' and 64 hex digits")
        self.digest = digest


class UnsafePathError(InvalidArgumentError):
    """A path or key would leave the store root or is otherwise unsafe."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"refused path {path!r}: {reason}")
        self.path = path
        self.reason = reason


class SettingsError(InvalidArgumentError):
    """A setting in shipyard.toml or a SHIPYARD_* variable is wrong."""

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"setting {setting}: {reason}")
        self.setting = setting
        self.reason = reason


class SourceError(InvalidArgumentError):
    """A data source cannot be read: missing, unreachable, malformed or empty."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"cannot read {source}: {reason}")
        self.source = source
        self.reason = reason


class DataValidationError(InvalidArgumentError):
    """A dataset version failed checks that were used as a gate."""

    def __init__(self, reference: str, failures: list[str]) -> None:
        listed = "; ".join(failures[:5]) + (" …" if len(failures) > 5 else "")
        super().__init__(f"{reference} failed {len(failures)} check(s): {listed}")
        self.reference = reference
        self.failures = failures


class NotSupportedError(ShipyardError):
    """A back end cannot do this operation."""

    def __init__(self, backend: str, operation: str) -> None:
        super().__init__(f"{backend} does not support {operation}")
        self.backend = backend
        self.operation = operation


class CorruptBlobError(BackendError):
    """A blob's content does not hash to its name."""

    def __init__(self, digest: str, actual: str) -> None:
        super().__init__(
            f"blob {digest} is corrupt: its content hashes to {actual}; "
            "run `shipyard fsck` to list every damaged blob"
        )
        self.digest = digest
        self.actual = actual


class StoreUnavailableError(BackendError):
    """A store cannot be reached or opened."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"store {uri} is unavailable: {reason}")
        self.uri = uri
        self.reason = reason


class MissingDependencyError(ShipyardError):
    """An optional package is needed for this feature."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed: run `pip install 'shipyard[{extra}]'` to use this"
        )
        self.package = package
        self.extra = extra

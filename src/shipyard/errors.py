"""The whole error tree of shipyard.

Every error shipyard raises on purpose derives from ``ShipyardError``; callers catch a
category, the CLI maps categories to exit codes and the server maps them to HTTP statuses::

    ShipyardError
    ├── NotFoundError
    │   ├── BlobNotFoundError(digest)
    │   ├── DatasetNotFoundError(reference)
    │   ├── DeploymentNotFoundError(deployment_id)
    │   ├── PipelineNotFoundError(target, reason)
    │   ├── PipelineRunNotFoundError(run_id)
    │   ├── ScheduleNotFoundError(name)
    │   └── ProjectNotFoundError(path)
    ├── AlreadyExistsError
    ├── InvalidArgumentError
    │   ├── InvalidNameError(name, reason)
    │   ├── InvalidReferenceError(reference, reason)
    │   ├── InvalidDigestError(digest)
    │   ├── UnsafePathError(path, reason)
    │   ├── SettingsError(setting, reason)
    │   ├── SourceError(source, reason)
    │   ├── DataValidationError(reference, failures)
    │   │   └── DataGateError(reference, failures, report)
    │   ├── InvalidScheduleError(schedule, reason)
    │   ├── TaskResultError(key, reason)
    │   ├── PredictionInputError(column, problem)
    │   ├── MalformedBodyError(content_type, reason)
    │   └── BodyTooLargeError(limit)
    ├── ConflictError
    ├── PermissionDeniedError
    │   └── UnauthenticatedError(reason)
    ├── NotSupportedError(backend, operation)
    ├── BackendError
    │   ├── CorruptBlobError(digest, actual)
    │   ├── CorruptBundleError(bundle, path, reason)
    │   └── StoreUnavailableError(uri, reason)
    ├── MissingDependencyError(package, extra)
    ├── PipelineFailedError(run_id, failed)
    ├── TaskTimeoutError(key, seconds)
    └── TaskCancelledError(key)

Messages say what is wrong and what to do next.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExistsError",
    "BackendError",
    "BlobNotFoundError",
    "BodyTooLargeError",
    "ConflictError",
    "CorruptBlobError",
    "CorruptBundleError",
    "DataGateError",
    "DataValidationError",
    "DatasetNotFoundError",
    "DeploymentNotFoundError",
    "InvalidArgumentError",
    "InvalidDigestError",
    "InvalidNameError",
    "InvalidReferenceError",
    "InvalidScheduleError",
    "MalformedBodyError",
    "MissingDependencyError",
    "NotFoundError",
    "NotSupportedError",
    "PermissionDeniedError",
    "PipelineFailedError",
    "PipelineNotFoundError",
    "PipelineRunNotFoundError",
    "PredictionInputError",
    "ProjectNotFoundError",
    "ScheduleNotFoundError",
    "SettingsError",
    "ShipyardError",
    "SourceError",
    "StoreUnavailableError",
    "TaskCancelledError",
    "TaskResultError",
    "TaskTimeoutError",
    "UnauthenticatedError",
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


class UnauthenticatedError(PermissionDeniedError):
    """The caller sent no token, or a malformed, unknown, expired or revoked one."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"not authenticated: {reason}; send 'Authorization: Bearer TOKEN' with a token "
            "from `shipyard tokens create USER`"
        )
        self.reason = reason


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


class DeploymentNotFoundError(NotFoundError):
    """No deployment has this id."""

    def __init__(self, deployment_id: str) -> None:
        super().__init__(
            f"deployment {deployment_id!r} does not exist: "
            "run `shipyard deployments list` to see them"
        )
        self.deployment_id = deployment_id


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


class PredictionInputError(InvalidArgumentError):
    """Prediction input does not match the model's signature (HTTP 422)."""

    def __init__(self, column: str, problem: str) -> None:
        super().__init__(f"column {column!r}: {problem}")
        self.column = column
        self.problem = problem


class MalformedBodyError(InvalidArgumentError):
    """A request body cannot be parsed in the format it claims (HTTP 400)."""

    def __init__(self, content_type: str, reason: str) -> None:
        super().__init__(f"malformed {content_type} body: {reason}")
        self.content_type = content_type
        self.reason = reason


class BodyTooLargeError(InvalidArgumentError):
    """A request body is larger than the server accepts (HTTP 413)."""

    def __init__(
        self,
        limit: int,
        *,
        hint: str = "send fewer rows per request or start the server with a larger --body-limit",
    ) -> None:
        super().__init__(f"request body is larger than the limit of {limit} bytes: {hint}")
        self.limit = limit


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


class CorruptBundleError(BackendError):
    """A model bundle's file is missing, altered or not listed in its manifest."""

    def __init__(self, bundle: str, path: str, reason: str) -> None:
        super().__init__(
            f"model bundle {bundle} is refused: {path} {reason}; "
            "package the model again with `shipyard package`"
        )
        self.bundle = bundle
        self.path = path
        self.reason = reason


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


# Pipelines ------------------------------------------------------------------------------


class PipelineNotFoundError(NotFoundError):
    """A pipeline target ("file.py:name" or "module:name") cannot be loaded."""

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"pipeline {target!r} not found: {reason}")
        self.target = target
        self.reason = reason


class PipelineRunNotFoundError(NotFoundError):
    """No pipeline run has this id."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"pipeline run {run_id!r} does not exist; `shipyard pipelines list` shows the runs"
        )
        self.run_id = run_id


class ScheduleNotFoundError(NotFoundError):
    """No schedule has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"schedule {name!r} does not exist; `shipyard schedules list` shows the schedules"
        )
        self.name = name


class InvalidScheduleError(InvalidArgumentError):
    """A cron expression or interval cannot be parsed."""

    def __init__(self, schedule: str, reason: str) -> None:
        super().__init__(f"schedule {schedule!r} is not valid: {reason}")
        self.schedule = schedule
        self.reason = reason


class TaskResultError(InvalidArgumentError):
    """A task's return value cannot be stored or sent (it cannot be pickled)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(
            f"task {key!r} returned a value that cannot be pickled ({reason}); "
            "return plain data (numbers, arrays, frames) instead of open files, locks or "
            "connections"
        )
        self.key = key
        self.reason = reason


class DataGateError(DataValidationError):
    """A data gate inside a pipeline failed: it carries the whole validation report."""

    def __init__(self, reference: str, failures: list[str], report: object) -> None:
        super().__init__(reference, failures)
        self.report = report


class PipelineFailedError(ShipyardError):
    """A pipeline run ended without a result: failed, cancelled or crashed."""

    def __init__(self, run_id: str, failed: list[str], status: str = "failed") -> None:
        tasks = f": task(s) {', '.join(failed)} failed" if failed else ""
        super().__init__(
            f"pipeline run {run_id} {status}{tasks}; `shipyard pipelines logs {run_id}` shows why"
        )
        self.run_id = run_id
        self.failed = failed
        self.status = status


class TaskTimeoutError(ShipyardError):
    """A task ran past its timeout and was stopped."""

    def __init__(self, key: str, seconds: float) -> None:
        super().__init__(f"task {key!r} ran past its timeout of {seconds:g}s and was killed")
        self.key = key
        self.seconds = seconds


class TaskCancelledError(ShipyardError):
    """A task was cancelled before it finished."""

    def __init__(self, key: str) -> None:
        super().__init__(f"task {key!r} was cancelled")
        self.key = key

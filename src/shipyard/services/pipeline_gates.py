"""Data gates: stop a pipeline when a dataset version fails its checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.errors import DataGateError

if TYPE_CHECKING:
    from shipyard.domain.checks import ValidationReport
    from shipyard.services.datasets import DatasetService

__all__ = ["gate"]


def gate(datasets: DatasetService, reference: str, checks: Any) -> ValidationReport:
    """Run ``checks`` on a dataset version; raise with the whole report when one fails.

    Use it inside a task: the task fails (it is not worth retrying, so give the task no
    retries or expect the same answer) and its dependents do not run.

    Args:
        datasets: the project's dataset service.
        reference: the version, e.g. ``"customers@3"`` or ``"customers@latest"``.
        checks: a checks TOML file, or checks as Python (see ``docs/validation.md``).

    Returns:
        The report when every check passed.

    Raises:
        DataGateError: naming every failed check; ``.report`` is the report.
    """
    report = datasets.validate(reference, checks)
    if not report.ok:
        raise DataGateError(
            report.reference,
            [f"{r.check.name}: {r.message}" for r in report.failures],
            report,
        )
    return report

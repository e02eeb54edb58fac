"""Who may call what: ONE table from every route (method, path template) to the roles allowed.

A route missing from the table is refused (deny by default), so a route added without a
policy is never open; a test walks every route of the app and fails on one without an entry.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ADMIN", "API_PREFIX", "APPROVE", "POLICY", "PUBLIC", "READ", "WRITE", "allowed_roles"]

PUBLIC: Final[frozenset[str]] = frozenset({"*"})  # no token needed
READ: Final = frozenset({"viewer", "editor", "approver", "admin"})
WRITE: Final = frozenset({"editor", "admin"})
APPROVE: Final = frozenset({"approver", "admin"})
AUDIT: Final = frozenset({"approver", "admin"})
ADMIN: Final = frozenset({"admin"})

API_PREFIX: Final = "/api/v1"
_V1 = API_PREFIX

POLICY: Final[dict[tuple[str, str], frozenset[str]]] = {
    ("GET", f"{_V1}/health"): PUBLIC,
    ("GET", f"{_V1}/whoami"): READ,
    # runs and experiments
    ("GET", f"{_V1}/experiments"): READ,
    ("GET", f"{_V1}/runs"): READ,
    ("POST", f"{_V1}/runs"): WRITE,
    ("GET", f"{_V1}/runs/{{run_id}}"): READ,
    ("POST", f"{_V1}/runs/{{run_id}}/batch"): WRITE,
    ("POST", f"{_V1}/runs/{{run_id}}/end"): WRITE,
    ("GET", f"{_V1}/runs/{{run_id}}/metric-history"): READ,
    # registry and approvals
    ("GET", f"{_V1}/models"): READ,
    ("GET", f"{_V1}/models/{{name}}/versions"): READ,
    ("GET", f"{_V1}/models/{{name}}/versions/{{version}}"): READ,
    ("PUT", f"{_V1}/models/{{name}}/aliases/{{alias}}"): WRITE,
    ("GET", f"{_V1}/promotions"): READ,
    ("POST", f"{_V1}/promotions"): WRITE,
    ("POST", f"{_V1}/promotions/{{request_id}}/approve"): APPROVE,
    ("POST", f"{_V1}/promotions/{{request_id}}/reject"): APPROVE,
    # audit
    ("GET", f"{_V1}/audit"): AUDIT,
    ("GET", f"{_V1}/audit/verify"): AUDIT,
    # datasets
    ("GET", f"{_V1}/datasets"): READ,
    ("GET", f"{_V1}/datasets/{{name}}/versions"): READ,
    ("GET", f"{_V1}/datasets/{{name}}/versions/{{version}}"): READ,
    # deployments and pipelines (read-only for now)
    ("GET", f"{_V1}/deployments"): READ,
    ("GET", f"{_V1}/pipelines/runs"): READ,
    # users and tokens
    ("GET", f"{_V1}/users"): ADMIN,
    ("POST", f"{_V1}/users"): ADMIN,
    ("GET", f"{_V1}/tokens"): ADMIN,
    ("POST", f"{_V1}/tokens"): ADMIN,
    ("DELETE", f"{_V1}/tokens/{{token_id}}"): ADMIN,
}


def allowed_roles(method: str, path_template: str) -> frozenset[str]:
    """The roles that may call a route; empty (nobody) for a route the table does not name."""
    return POLICY.get((method.upper(), path_template), frozenset())

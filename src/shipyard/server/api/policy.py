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
    ("GET", f"{_V1}/runs/{{run_id}}/artifacts"): READ,
    ("POST", f"{_V1}/runs/{{run_id}}/artifacts"): WRITE,
    ("POST", f"{_V1}/runs/{{run_id}}/inputs"): WRITE,
    # registry and approvals
    ("GET", f"{_V1}/models"): READ,
    ("GET", f"{_V1}/models/{{name}}"): READ,
    ("PATCH", f"{_V1}/models/{{name}}"): WRITE,
    ("GET", f"{_V1}/models/{{name}}/versions"): READ,
    ("GET", f"{_V1}/models/{{name}}/versions/{{version}}"): READ,
    ("PUT", f"{_V1}/models/{{name}}/aliases/{{alias}}"): WRITE,
    ("POST", f"{_V1}/models/{{name}}/versions"): WRITE,
    ("GET", f"{_V1}/model-versions"): READ,
    ("PUT", f"{_V1}/models/{{name}}/stages/{{stage}}"): WRITE,
    ("POST", f"{_V1}/promotions/{{request_id}}/cancel"): WRITE,
    ("GET", f"{_V1}/promotions"): READ,
    ("POST", f"{_V1}/promotions"): WRITE,
    ("POST", f"{_V1}/promotions/{{request_id}}/approve"): APPROVE,
    ("POST", f"{_V1}/promotions/{{request_id}}/reject"): APPROVE,
    # the prediction log
    ("GET", f"{_V1}/predictions/{{name}}"): READ,
    ("POST", f"{_V1}/predictions/{{name}}/feedback"): WRITE,
    # lineage
    ("GET", f"{_V1}/lineage"): READ,
    ("GET", f"{_V1}/lineage/kinds"): READ,
    # audit
    ("GET", f"{_V1}/audit"): AUDIT,
    ("GET", f"{_V1}/audit/verify"): AUDIT,
    # content by digest (no paths): uploads by writers, downloads by readers
    ("POST", f"{_V1}/blobs/missing"): WRITE,
    ("PUT", f"{_V1}/blobs/{{digest}}"): WRITE,
    ("POST", f"{_V1}/blobs/batch"): WRITE,
    ("GET", f"{_V1}/blobs/{{digest}}"): READ,
    ("HEAD", f"{_V1}/blobs/{{digest}}"): READ,
    # datasets
    ("GET", f"{_V1}/datasets"): READ,
    ("GET", f"{_V1}/datasets/{{name}}/versions"): READ,
    ("GET", f"{_V1}/datasets/{{name}}/versions/{{version}}"): READ,
    ("GET", f"{_V1}/dataset-versions"): READ,
    ("POST", f"{_V1}/datasets/{{name}}/versions"): WRITE,
    ("PUT", f"{_V1}/datasets/{{name}}/labels/{{label}}"): WRITE,
    # deployments and pipelines
    ("GET", f"{_V1}/deployments"): READ,
    ("GET", f"{_V1}/pipelines/runs"): READ,
    ("GET", f"{_V1}/deployments/{{deployment_id}}"): READ,
    ("GET", f"{_V1}/pipelines/runs/{{run_id}}"): READ,
    ("GET", f"{_V1}/pipelines/runs/{{run_id}}/tasks"): READ,
    ("GET", f"{_V1}/pipelines/runs/{{run_id}}/logs"): READ,
    ("POST", f"{_V1}/pipelines/runs/{{run_id}}/cancel"): WRITE,
    # remote serving processes
    ("POST", f"{_V1}/deployments"): WRITE,
    ("POST", f"{_V1}/deployments/{{deployment_id}}/switch"): WRITE,
    ("POST", f"{_V1}/deployments/{{deployment_id}}/heartbeat"): WRITE,
    ("POST", f"{_V1}/deployments/{{deployment_id}}/stop"): WRITE,
    ("POST", f"{_V1}/deployments/{{deployment_id}}/predictions"): WRITE,
    # remote pipeline drivers
    ("POST", f"{_V1}/pipelines/runs"): WRITE,
    ("POST", f"{_V1}/pipelines/runs/{{run_id}}/records"): WRITE,
    ("GET", f"{_V1}/pipelines/cache/{{cache_key}}"): WRITE,
    # monitoring
    ("GET", f"{_V1}/monitoring/runs"): READ,
    ("GET", f"{_V1}/monitoring/runs/{{run_id}}"): READ,
    ("GET", f"{_V1}/monitoring/runs/{{run_id}}/report"): READ,
    ("POST", f"{_V1}/monitoring/runs"): WRITE,
    ("GET", f"{_V1}/monitoring/metrics"): READ,
    ("GET", f"{_V1}/monitoring/runs/{{run_id}}/window"): READ,
    ("POST", f"{_V1}/monitoring/runs/{{run_id}}/datasets"): WRITE,
    # schedules: definitions (checked here, targets never loaded) and remote schedulers
    ("GET", f"{_V1}/schedules"): READ,
    ("POST", f"{_V1}/schedules"): WRITE,
    ("GET", f"{_V1}/schedules/{{name}}"): READ,
    ("PATCH", f"{_V1}/schedules/{{name}}"): WRITE,
    ("DELETE", f"{_V1}/schedules/{{name}}"): WRITE,
    ("POST", f"{_V1}/schedules/claims"): WRITE,
    ("POST", f"{_V1}/schedules/{{name}}/lease"): WRITE,
    ("POST", f"{_V1}/schedules/{{name}}/release"): WRITE,
    # users and tokens
    ("GET", f"{_V1}/users"): ADMIN,
    ("POST", f"{_V1}/users"): ADMIN,
    ("POST", f"{_V1}/users/{{name}}/grant"): ADMIN,
    ("POST", f"{_V1}/users/{{name}}/revoke"): ADMIN,
    ("GET", f"{_V1}/tokens"): ADMIN,
    ("POST", f"{_V1}/tokens"): ADMIN,
    ("DELETE", f"{_V1}/tokens/{{token_id}}"): ADMIN,
}


def allowed_roles(method: str, path_template: str) -> frozenset[str]:
    """The roles that may call a route; empty (nobody) for a route the table does not name."""
    return POLICY.get((method.upper(), path_template), frozenset())

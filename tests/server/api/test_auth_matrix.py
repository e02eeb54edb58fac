"""Every route x every kind of caller is answered as the policy table says."""

from __future__ import annotations

import re
from typing import Any

import httpx

from shipyard.server.api.policy import POLICY, PUBLIC

from .conftest import Team

CALLERS = (
    "none",
    "malformed",
    "unknown",
    "expired",
    "revoked",
    "viewer",
    "editor",
    "approver",
    "admin",
)
ROLES = ("viewer", "editor", "approver", "admin")
_PARAMS = {
    "run_id": "0" * 32,
    "request_id": "0" * 32,
    "token_id": "0" * 32,
    "name": "m1",
    "alias": "staging",
    "version": "1",
    "label": "golden",
    "digest": "blake3:" + "0" * 64,
    "deployment_id": "0" * 32,
    "stage": "staging",
    "cache_key": "0" * 64,
}
_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/v1/runs"): {"experiment": "matrix"},
    ("POST", "/api/v1/runs/{run_id}/batch"): {"params": {"a": "1"}},
    ("POST", "/api/v1/runs/{run_id}/end"): {"status": "finished"},
    ("PUT", "/api/v1/models/{name}/aliases/{alias}"): {"version": 1},
    ("POST", "/api/v1/promotions"): {"reference": "m1@1", "to": "production", "reason": "ok"},
    ("POST", "/api/v1/promotions/{request_id}/approve"): {},
    ("POST", "/api/v1/promotions/{request_id}/reject"): {},
    ("POST", "/api/v1/users"): {"name": "newcomer", "roles": ["viewer"]},
    ("POST", "/api/v1/tokens"): {"user": "nobody"},
    ("POST", "/api/v1/users/{name}/grant"): {"roles": ["viewer"]},
    ("POST", "/api/v1/predictions/{name}/feedback"): {"labels": {"r1": 1}},
    ("POST", "/api/v1/users/{name}/revoke"): {"roles": ["viewer"]},
    ("POST", "/api/v1/blobs/missing"): {"digests": []},
    ("POST", "/api/v1/runs/{run_id}/artifacts"): {
        "files": [{"path": "a.txt", "digest": "blake3:" + "0" * 64, "size": 1}]
    },
    ("POST", "/api/v1/runs/{run_id}/inputs"): {"dataset": "d@1"},
    ("POST", "/api/v1/datasets/{name}/versions"): {
        "files": [{"path": "a.txt", "digest": "blake3:" + "0" * 64, "size": 1}]
    },
    ("PUT", "/api/v1/datasets/{name}/labels/{label}"): {"version": 1},
    ("POST", "/api/v1/pipelines/runs"): {
        "pipeline": "matrix",
        "target": "flow.py:main",
        "executor": "local",
        "host": "laptop",
    },
    ("POST", "/api/v1/pipelines/runs/{run_id}/records"): {"beat": True},
    ("POST", "/api/v1/deployments"): {
        "name": "m1",
        "version": 1,
        "url": "http://box:8080",
        "runtime": "native",
        "host": "box",
        "pid": 1,
    },
    ("POST", "/api/v1/deployments/{deployment_id}/switch"): {"version": 1},
    ("POST", "/api/v1/monitoring/runs/{run_id}/datasets"): {"dataset": "d@1"},
    ("POST", "/api/v1/models/{name}/versions"): {
        "files": [{"path": "a.txt", "digest": "blake3:" + "0" * 64, "size": 1}],
        "flavor": "sklearn",
        "onnx": {"status": "unavailable"},
    },
    ("PUT", "/api/v1/models/{name}/stages/{stage}"): {"version": 1},
}
_QUERY = {
    ("GET", "/api/v1/runs/{run_id}/metric-history"): {"key": "loss"},
    ("GET", "/api/v1/dataset-versions"): {"reference": "d@1"},
    ("GET", "/api/v1/model-versions"): {"reference": "m1@1"},
    ("GET", "/api/v1/lineage"): {"kind": "run", "id": "0" * 32},
    ("GET", "/api/v1/lineage/kinds"): {"id": "m1@1"},
}
_QUERY[("GET", "/api/v1/pipelines/runs/{run_id}/logs")] = {"task": "train-0"}
_QUERY[("GET", "/api/v1/monitoring/runs")] = {"model": "m1"}
_BODIES[("POST", "/api/v1/monitoring/runs")] = {"model": "m1@1", "window": "1h"}
_QUERY[("GET", "/api/v1/monitoring/metrics")] = {"model": "m1"}
_BODIES[("POST", "/api/v1/schedules")] = {
    "name": "matrix",
    "pipeline": "matrix",
    "target": "flow.py:main",
    "every": 3600,
}
_BODIES[("PATCH", "/api/v1/schedules/{name}")] = {"enabled": False}
_BODIES[("POST", "/api/v1/schedules/claims")] = {"owner": "matrix:1"}
_BODIES[("POST", "/api/v1/schedules/{name}/lease")] = {
    "owner": "matrix:1",
    "until": "2026-01-01T00:00:00+00:00",
}
_BODIES[("POST", "/api/v1/schedules/{name}/release")] = {"owner": "matrix:1"}


def _request(client: httpx.Client, method: str, template: str) -> httpx.Response:
    path = re.sub(r"\{(\w+)\}", lambda m: _PARAMS[m.group(1)], template)
    return client.request(
        method,
        path,
        json=_BODIES.get((method, template)),
        params=_QUERY.get((method, template)),
    )


def test_every_route_answers_every_caller_as_the_policy_says(team: Team) -> None:
    clients = {"none": team.client(None)} | {c: team.client(c) for c in CALLERS if c != "none"}
    wrong: list[str] = []
    checked = 0
    for (method, template), allowed in sorted(POLICY.items()):
        for name in CALLERS:
            answer = _request(clients[name], method, template)
            checked += 1
            status = answer.status_code
            if allowed == PUBLIC:
                ok = status == 200
            elif name not in ROLES:
                ok = status == 401 and answer.headers.get("www-authenticate") == "Bearer"
            elif name in allowed:
                ok = status not in (401, 403) and status < 500
            else:
                ok = status == 403
            if not ok:
                wrong.append(f"{method} {template} as {name}: {status} {answer.text[:120]}")
    for client in clients.values():
        client.close()
    assert checked == len(POLICY) * len(CALLERS)
    assert not wrong, "\n".join(wrong)


def test_a_write_is_recorded_as_the_token_user(team: Team) -> None:
    with team.client("admin") as admin:
        assert (
            admin.post("/api/v1/users", json={"name": "zoe", "roles": ["viewer"]}).status_code
            == 201
        )
        entries = admin.get("/api/v1/audit", params={"entity_kind": "user"}).json()
    made = [e for e in entries if e["entity_id"] == "zoe"]
    assert made and made[0]["actor"] == "alice"
    with team.client("editor") as editor:
        created = editor.post("/api/v1/runs", json={"experiment": "who"}).json()
    assert team.project.runs.get(created["id"]).user == "eddie"


def test_roles_are_read_at_each_request(team: Team) -> None:
    with team.client("viewer") as viewer:
        assert viewer.post("/api/v1/runs", json={"experiment": "x"}).status_code == 403
        team.project.users.grant("vic", ["editor"])
        assert viewer.post("/api/v1/runs", json={"experiment": "x"}).status_code == 201


def test_a_revoked_token_stops_working_at_once(team: Team) -> None:
    token, secret = team.project.tokens.create("eddie", "short")
    with httpx.Client(base_url=team.url, headers={"authorization": f"Bearer {secret}"}) as c:
        assert c.get("/api/v1/whoami").json()["user"] == "eddie"
        with team.client("admin") as admin:
            assert admin.delete(f"/api/v1/tokens/{token.id}").status_code == 200
        answer = c.get("/api/v1/whoami")
    assert answer.status_code == 401
    assert "revoked" in answer.json()["error"]["message"]

"""The REST API: errors as JSON with the right status, OpenAPI, registry approvals, audit,
read-only lists, host and origin checks, keep-alive speed."""

from __future__ import annotations

import statistics
import time

import httpx
import numpy as np
from sklearn.linear_model import Ridge

from shipyard.app import Shipyard

from .conftest import ApiServer, Team


def _register(project: Shipyard, name: str = "churn") -> int:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    return project.models.log_model(Ridge().fit(X, y), name, onnx=False).version


def test_openapi_is_published_without_a_token(team: Team) -> None:
    answer = httpx.get(f"{team.url}/api/v1/openapi.json")
    assert answer.status_code == 200
    assert "/api/v1/runs/{run_id}/batch" in answer.json()["paths"]


def test_errors_are_json_with_the_status_of_their_category(team: Team) -> None:
    with team.client("editor") as c:
        missing = c.get(f"/api/v1/runs/{'0' * 32}")
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "NotFoundError"
        bad_id = c.get("/api/v1/runs/not-an-id")
        assert bad_id.status_code == 422
        not_json = c.post(
            "/api/v1/runs", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert not_json.status_code == 422
        wrong_type = c.post("/api/v1/runs", json={"experiment": ["a"]})
        assert wrong_type.status_code == 422
        extra = c.post("/api/v1/runs", json={"experiment": "a", "path": "/etc/passwd"})
        assert extra.status_code == 422
        bad_filter = c.get("/api/v1/runs", params={"filter": "metrics.x >>> 1"})
        assert bad_filter.status_code == 422
        assert "InvalidArgumentError" in bad_filter.text
        run = c.post("/api/v1/runs", json={"experiment": "e"}).json()
        c.post(f"/api/v1/runs/{run['id']}/batch", json={"params": {"p": "1"}})
        clash = c.post(f"/api/v1/runs/{run['id']}/batch", json={"params": {"p": "2"}})
        assert clash.status_code == 409
        unknown_route = c.get("/api/v1/nothing-here")
        assert unknown_route.status_code in (403, 404)
    assert team.project.runs.get(run["id"]).params == {"p": "1"}


def test_a_batch_is_written_in_one_transaction_or_not_at_all(team: Team) -> None:
    with team.client("editor") as c:
        run = c.post("/api/v1/runs", json={"experiment": "e"}).json()
        c.post(f"/api/v1/runs/{run['id']}/batch", json={"params": {"p": "1"}})
        bad = c.post(
            f"/api/v1/runs/{run['id']}/batch",
            json={
                "params": {"p": "2"},
                "tags": {"t": "x"},
                "metrics": [{"key": "m", "value": 1, "step": 0, "timestamp": 1.0}],
            },
        )
    assert bad.status_code == 409
    stored = team.project.runs.get(run["id"])
    assert stored.tags == {} and stored.metrics == {}


def test_promotion_is_requested_by_an_editor_and_approved_by_an_approver(team: Team) -> None:
    version = _register(team.project)
    with team.client("editor") as editor, team.client("approver") as approver:
        asked = editor.post(
            "/api/v1/promotions",
            json={"reference": f"churn@{version}", "to": "production", "reason": "better auc"},
        )
        assert asked.status_code == 201, asked.text
        request_id = asked.json()["id"]
        assert editor.post(f"/api/v1/promotions/{request_id}/approve", json={}).status_code == 403
        done = approver.post(f"/api/v1/promotions/{request_id}/approve", json={"comment": "ok"})
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "approved"
        shown = approver.get(f"/api/v1/models/churn/versions/{version}").json()
        assert shown["stage"] == "production"
        listed = approver.get("/api/v1/models").json()
        assert [m["name"] for m in listed] == ["churn"]
    with team.client("admin") as admin:
        entries = admin.get("/api/v1/audit", params={"entity_kind": "promotion_request"}).json()
        verified = admin.get("/api/v1/audit/verify").json()
    actors = {e["action"]: e["actor"] for e in entries}
    assert "eddie" in actors.values() and "april" in actors.values()
    assert verified["ok"] is True and verified["entries"] > 0


def test_read_only_lists_answer(team: Team) -> None:
    with team.client("viewer") as c:
        assert c.get("/api/v1/datasets").json() == []
        assert c.get("/api/v1/deployments").json() == []
        assert c.get("/api/v1/pipelines/runs").json() == []
        assert c.get("/api/v1/datasets/none/versions").status_code == 404
        assert c.get("/api/v1/whoami").json() == {"user": "vic", "roles": ["viewer"]}


def test_a_cross_origin_write_is_refused(team: Team) -> None:
    with team.client("editor") as c:
        foreign = c.post(
            "/api/v1/runs", json={"experiment": "x"}, headers={"origin": "https://evil.example"}
        )
        same = c.post(
            "/api/v1/runs",
            json={"experiment": "x"},
            headers={"origin": f"http://127.0.0.1:{team.server.port}"},
        )
    assert foreign.status_code == 403
    assert same.status_code == 201


def test_without_auth_only_loopback_host_names_are_answered(open_server: ApiServer) -> None:
    with httpx.Client(base_url=open_server.url) as c:
        assert c.get("/api/v1/whoami").json()["user"] == "alice"
        rebound = c.get("/api/v1/whoami", headers={"host": "attacker.example"})
    assert rebound.status_code == 403
    assert "loopback" in rebound.text


def test_a_keep_alive_round_trip_takes_about_a_millisecond(team: Team) -> None:
    # Nagle + delayed ACK (TCP_NODELAY not set) would show as ~40 ms per call; the bound
    # leaves room for a loaded CI machine.
    with team.client("viewer") as c:
        times = {"/api/v1/health": [], "/api/v1/whoami": []}
        for _ in range(200):
            for path, spent in times.items():
                start = time.perf_counter()
                assert c.get(path).status_code == 200
                spent.append(time.perf_counter() - start)
    medians = {path: statistics.median(spent) for path, spent in times.items()}
    assert medians["/api/v1/health"] < 0.010, medians
    assert medians["/api/v1/whoami"] < 0.015, medians  # token check: one indexed read

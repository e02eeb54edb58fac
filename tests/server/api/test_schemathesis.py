"""Schemathesis against the live server's OpenAPI: every operation, a bounded number of
examples each, over HTTP to uvicorn on loopback (the real middleware and auth run).

As admin: no 5xx, every status documented, content type and body as documented, invalid
input refused with a 4xx (valid and invalid requests on SQLite, valid ones on PostgreSQL
too). Without a token: every operation the policy does not mark PUBLIC answers 401, whatever
the request holds. Phases: schemathesis's examples, coverage (boundaries, wrong types,
missing parameters, unreadable bodies: deterministic) and, as admin, fuzzing
(``MAX_EXAMPLES`` a generation mode, derandomized). ``-s`` prints the requests sent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from shipyard.server.api.policy import API_PREFIX, PUBLIC, allowed_roles

from .conftest import Team

MAX_EXAMPLES = 10  # fuzzed cases an operation and generation mode: keeps the file bounded
SEED = 20261124
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
BOUNDED = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Traffic:
    """A keep-alive session that counts what it sent, by status, and the operations called."""

    def __init__(self) -> None:
        self.session = requests.Session()
        self.statuses: Counter[int] = Counter()
        self.operations: set[str] = set()
        self.session.hooks["response"].append(self._count)

    def _count(self, response: requests.Response, *args: object, **kwargs: object) -> None:
        self.statuses[response.status_code] += 1


def _schema(
    team: Team, request: pytest.FixtureRequest, *, mode: str = "all", **phases: Any
) -> schemathesis.BaseSchema:
    """The OpenAPI document as the running server publishes it, loaded over HTTP."""
    # schemathesis 4.32's from_fixture() reads and rewrites `item._nodeid`, which pytest 9.2
    # renamed `_id` (tests/conftest.py works around the same break in pytest-xdist).
    request.node._nodeid = request.node.nodeid
    config = schemathesis.Config.from_dict(
        {
            "base-url": team.url,
            "seed": SEED,
            "generation": {"mode": mode, "deterministic": True, "database": "none"},
            "phases": {"stateful": {"enabled": False}, **phases},
        }
    )
    document = httpx.get(f"{team.url}{API_PREFIX}/openapi.json").json()
    # The document declares which operations need a bearer token (test_policy checks it);
    # these tests send the token themselves (or none, on purpose), so schemathesis must not
    # treat the header as a parameter to drop or break.
    document.get("components", {}).pop("securitySchemes", None)
    for operations in document["paths"].values():
        for operation in operations.values():
            operation.pop("security", None)
    return schemathesis.openapi.from_dict(document, config=config)


@pytest.fixture
def admin_schema(team: Team, request: pytest.FixtureRequest) -> schemathesis.BaseSchema:
    """The schema, without the coverage phase's calls of methods a path lacks (the no-token
    test sends those). Invalid requests are refused by the API's validation before any store
    call, so they go to SQLite only; valid ones reach the store, where back ends differ
    (PostgreSQL's int4 and text), so both back ends get them."""
    sqlite = team.project.settings.metadata_uri.startswith("sqlite")
    mode = "all" if sqlite else "positive"
    return _schema(team, request, mode=mode, coverage={"unexpected-methods": []})


@pytest.fixture
def anonymous_schema(team: Team, request: pytest.FixtureRequest) -> schemathesis.BaseSchema:
    """The schema without fuzzing: the coverage phase already sends every shape of request
    that matters to auth (missing and wrong parameters, bodies that are not JSON, methods a
    path lacks), deterministically."""
    return _schema(team, request, fuzzing={"enabled": False})


@pytest.fixture
def traffic(team: Team) -> Iterator[Traffic]:
    """Counts of what a test sent (printed with ``-s``); every operation must be called."""
    found = Traffic()
    yield found
    found.session.close()
    paths = httpx.get(f"{team.url}{API_PREFIX}/openapi.json").json()["paths"]
    listed = {f"{m.upper()} {p}" for p, ops in paths.items() for m in ops}
    print(
        f"\n{len(found.operations)} operations, {sum(found.statuses.values())} requests: "
        f"{dict(sorted(found.statuses.items()))}"
    )
    assert found.operations == listed, f"not called: {sorted(listed - found.operations)}"


as_admin = schemathesis.pytest.from_fixture("admin_schema")
anonymous = schemathesis.pytest.from_fixture("anonymous_schema")


@as_admin.parametrize()
@BOUNDED
def test_every_operation_answers_as_documented(
    case: schemathesis.Case, team: Team, traffic: Traffic
) -> None:
    traffic.operations.add(case.operation.label)
    case.call_and_validate(
        session=traffic.session,
        headers={"authorization": f"Bearer {team.tokens['admin']}"},
        checks=CHECKS,
    )


# Without a token no request reaches the metadata store: one back end is enough.
@pytest.mark.parametrize("metadata_uri", ["sqlite"], indirect=True)
@anonymous.parametrize()
@BOUNDED
def test_every_operation_not_public_needs_a_token(
    case: schemathesis.Case, traffic: Traffic
) -> None:
    operation = case.operation
    traffic.operations.add(operation.label)
    answer = case.call(session=traffic.session)
    curl = case.as_curl_command()
    if case.method.upper() != operation.method.upper():
        # The coverage phase also sends methods the operation lacks: no route runs (405),
        # or another route of that shape does (PUT /blobs/{digest} for /blobs/missing).
        assert answer.status_code in (401, 405), curl
        return
    roles = allowed_roles(operation.method, operation.path)
    assert roles, f"{operation.label} has no policy entry"
    if roles == PUBLIC:
        assert answer.status_code != 401, curl
        return
    # Even a body that is not JSON, or not UTF-8, gets 401 before any 400 or 422.
    assert answer.status_code == 401, (answer.status_code, answer.text, curl)
    assert answer.headers["www-authenticate"] == ["Bearer"]


def test_versions_beyond_the_stores_integers_are_refused_not_a_server_error(team: Team) -> None:
    # Found by schemathesis on PostgreSQL: version 2**31 overflowed its INTEGER column (500).
    too_big = 2**31
    with team.client("admin") as c:
        for path in (
            f"{API_PREFIX}/models/churn/versions/{too_big}",
            f"{API_PREFIX}/datasets/sales/versions/{too_big}",
        ):
            assert c.get(path).status_code == 422, path
        promotion = {"reference": f"churn@{too_big}", "to": "production", "reason": "r"}
        refused = c.post(f"{API_PREFIX}/promotions", json=promotion)
        assert refused.status_code == 422
        assert "versions go up to 2147483647" in refused.json()["error"]["message"]
        run = {"experiment": "e", "pid": too_big}
        assert c.post(f"{API_PREFIX}/runs", json=run).status_code == 422


def test_a_body_that_cannot_be_read_is_refused_by_auth_first(team: Team) -> None:
    # Found by schemathesis: FastAPI decodes the body before the route's dependencies, so a
    # request without a token got 400 or 422 (and the parser's message) instead of 401.
    headers = {"content-type": "application/json"}
    for body in (b"\x00", b"\xff\xfe", b"{not json"):
        for role, status in ((None, 401), ("malformed", 401), ("viewer", 403)):
            with team.client(role) as c:
                answer = c.post(f"{API_PREFIX}/runs", content=body, headers=headers)
            assert answer.status_code == status, (role, body, answer.text)
        with team.client("editor") as c:
            answer = c.post(f"{API_PREFIX}/runs", content=body, headers=headers)
        assert answer.status_code in (400, 422), (body, answer.text)
        assert answer.json()["error"]["type"] in ("HTTPError", "InvalidArgumentError")


def test_text_a_postgresql_column_cannot_hold_is_refused_not_a_server_error(team: Team) -> None:
    # PostgreSQL's text columns cannot hold NUL: a promotion's reason with one was a 500.
    with team.client("admin") as c:
        promotion = {"reference": "churn@1", "to": "production", "reason": "a\x00b"}
        assert c.post(f"{API_PREFIX}/promotions", json=promotion).status_code == 422
        decision = {"comment": "a\x00b"}
        path = f"{API_PREFIX}/promotions/{'0' * 32}/approve"
        assert c.post(path, json=decision).status_code == 422


def test_a_malformed_dataset_profile_is_refused_not_a_server_error(team: Team) -> None:
    # Found by schemathesis: a profile without "rows" raised KeyError in the handler (500).
    upload = {"path": "a.csv", "digest": "blake3:" + "0" * 64, "size": 1}
    with team.client("admin") as c:
        for profile in (
            {},
            {"rows": "many", "columns": [], "schema": []},
            {"rows": 1, "columns": 3},
        ):
            body = {"files": [upload], "profile": profile}
            answer = c.post(f"{API_PREFIX}/datasets/sales/versions", json=body)
            assert answer.status_code == 422, (profile, answer.text)
            assert "profile is not a table profile" in answer.json()["error"]["message"]

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import Ridge
from typer.testing import Result

import shipyard
from shipyard.services.flavors.python import ModelContext, PythonModel

Invoke = Callable[..., Result]
As = Callable[..., Result]


class Constant(PythonModel):
    def predict(self, context: ModelContext, model_input: object) -> object:
        return 1


@pytest.fixture
def as_user(cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> As:
    """Run the CLI as a given SHIPYARD_USER."""

    def invoke(user: str, *args: str) -> Result:
        monkeypatch.setenv("SHIPYARD_USER", user)
        try:
            return cli(*args)
        finally:
            monkeypatch.delenv("SHIPYARD_USER")

    return invoke


@pytest.fixture
def churn(cli: Invoke, tmp_path: Path) -> str:
    """A project with two versions of the sklearn model ``churn``, logged by a run."""
    assert cli("init").exit_code == 0
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :6]
    with shipyard.connect(tmp_path, user="alice") as project:
        with project.runs.start_run("churn", capture=False) as run:
            run.log_model(Ridge().fit(X, y), "churn", input_example=X[:5], training_sample=X)
            run.log_model(Ridge(alpha=2.0).fit(X, y), "churn", input_example=X[:5])
        return run.id


@pytest.fixture
def people(as_user: As, churn: str) -> None:
    """alice the admin, bob an approver, carol an editor."""
    assert as_user("alice", "users", "create", "alice", "--role", "admin").exit_code == 0
    assert as_user("alice", "users", "create", "bob", "--role", "approver").exit_code == 0
    assert as_user("alice", "users", "create", "carol", "--role", "editor").exit_code == 0


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _one_error_line(result: Result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    return lines[0]


def test_list_versions_and_show_describe_the_logged_models(
    cli: Invoke, churn: str, tmp_path: Path
) -> None:
    models = _json(cli("models", "list", "--json"))
    assert [(m["name"], m["latest_version"], m["aliases"]) for m in models] == [("churn", 2, {})]
    versions = _json(cli("models", "versions", "churn", "--json"))
    assert [v["ref"] for v in versions] == ["churn@1", "churn@2"]
    assert {v["run_id"] for v in versions} == {churn}

    shown = _json(cli("models", "show", "churn@latest", "--json"))
    assert shown["ref"] == "churn@2" and shown["flavor"] == "sklearn"
    assert [c["name"] for c in shown["signature"]["inputs"]][:2] == ["mean radius", "mean texture"]
    assert any(r.startswith("scikit-learn==") for r in shown["requirements"])
    assert shown["onnx"]["status"] == "attached" and shown["onnx"]["max_diff"] < 1e-4
    assert {"model.skops", "model.onnx", "shipyard-model.json"} <= {
        f["path"] for f in shown["files"]
    }
    assert (shown["stage"], shown["aliases"]) == ("none", [])

    text = cli("models", "show", "churn@1")
    assert text.exit_code == 0, text.output
    for expected in (
        "churn@1",
        "sklearn",
        "attached (max diff",
        "mean radius",
        churn,
        "model.skops",
    ):
        assert expected in text.output
    listed = cli("models", "versions", "churn")
    assert "churn@2" in listed.output and "attached" in listed.output
    assert "churn" in cli("models", "list").output


def test_unprotected_aliases_and_stages_move_directly(cli: Invoke, churn: str) -> None:
    moved = _json(cli("models", "alias", "churn@1", "challenger", "--json"))
    assert moved["aliases"] == ["challenger"]
    assert "churn@challenger -> churn@2" in cli("models", "alias", "churn@2", "challenger").output
    assert _json(cli("models", "stage", "churn@challenger", "staging", "--json"))["stage"] == (
        "staging"
    )
    assert _json(cli("models", "show", "churn@staging", "--json"))["ref"] == "churn@2"
    models = _json(cli("models", "list", "--json"))
    assert models[0]["aliases"] == {"challenger": 2}


def test_the_promotion_flow_needs_an_approver_who_is_not_the_requester(
    as_user: As, people: None
) -> None:
    direct = _one_error_line(as_user("carol", "models", "stage", "churn@1", "production"), 4)
    assert "stage 'production' is protected" in direct
    alias = _one_error_line(as_user("carol", "models", "alias", "churn@1", "champion"), 4)
    assert "alias 'champion' is protected" in alias

    made = _json(
        as_user(
            "carol",
            "models",
            "request",
            "churn@1",
            "--to",
            "production",
            "--reason",
            "beats v2",
            "--json",
        )
    )
    assert (made["model_version"], made["target"], made["status"]) == (
        "churn@1",
        "production",
        "pending",
    )
    assert made["requested_by"] == "carol"
    denied = _one_error_line(as_user("carol", "models", "approve", made["id"]), 4)
    assert "does not hold the approver role" in denied

    own = _json(
        as_user("bob", "models", "request", "churn@2", "--to", "champion", "-r", "try", "--json")
    )
    two_person = _one_error_line(as_user("bob", "models", "approve", own["id"]), 4)
    assert "two-person rule" in two_person

    pending = _json(as_user("bob", "models", "requests", "--json"))
    assert {r["id"] for r in pending} == {made["id"], own["id"]}
    table = as_user("bob", "models", "requests", "--model", "churn")
    assert made["id"] in table.output and "beats" in table.output

    approved = _json(as_user("bob", "models", "approve", made["id"], "-m", "ok", "--json"))
    assert (approved["status"], approved["decided_by"], approved["comment"]) == (
        "approved",
        "bob",
        "ok",
    )
    rejected = as_user("alice", "models", "reject", own["id"], "--comment", "not yet")
    assert rejected.exit_code == 0, rejected.output
    assert "rejected" in rejected.output

    shown = _json(as_user("carol", "models", "show", "churn@production", "--json"))
    assert (shown["ref"], shown["stage"], shown["aliases"]) == ("churn@1", "production", [])
    assert _json(as_user("carol", "models", "requests", "--json")) == []
    decided = _json(as_user("carol", "models", "requests", "--all", "--json"))
    assert {r["status"] for r in decided} == {"approved", "rejected"}
    again = _one_error_line(as_user("bob", "models", "reject", made["id"]), 3)
    assert "approved already" in again

    # A second approved request for the alias, then production moves on and v1 retires.
    champion = _json(
        as_user("carol", "models", "request", "churn@2", "--to", "champion", "-r", "x", "--json")
    )
    as_user("bob", "models", "approve", champion["id"])
    assert _json(as_user("carol", "models", "show", "churn@champion", "--json"))["aliases"] == [
        "champion"
    ]
    second = _json(
        as_user("carol", "models", "request", "churn@2", "--to", "production", "-r", "y", "--json")
    )
    as_user("bob", "models", "approve", second["id"])
    stages = {
        v["ref"]: v["stage"] for v in _json(as_user("bob", "models", "versions", "churn", "--json"))
    }
    assert stages == {"churn@1": "archived", "churn@2": "production"}


def test_a_request_needs_a_reason(as_user: As, people: None) -> None:
    line = _one_error_line(
        as_user("carol", "models", "request", "churn@1", "--to", "production"), 2
    )
    assert "needs a reason (--reason)" in line
    blank = as_user("carol", "models", "request", "churn@1", "--to", "production", "--reason", " ")
    assert "needs a reason" in _one_error_line(blank, 2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("models", "show", "nope@1"), "model 'nope' does not exist"),
        (("models", "show", "churn@9"), "churn has versions 1 to 2"),
        (("models", "show", "churn@nobody"), "no alias or stage 'nobody'"),
        (("models", "versions", "nope"), "model 'nope' does not exist"),
        (("models", "alias", "churn@7", "challenger"), "versions 1 to 2"),
        (("models", "alias", "churn@1", "latest"), "cannot be an alias"),
        (("models", "stage", "churn@1", "retired"), "unknown stage 'retired'"),
        (("models", "show", "churn@@1"), "more than one '@'"),
        (("models", "approve", "0" * 32), "does not exist"),
    ],
)
def test_unknown_models_aliases_and_requests_are_one_line_exit_2(
    cli: Invoke, churn: str, args: tuple[str, ...], message: str
) -> None:
    assert message in _one_error_line(cli(*args), 2)


def test_users_first_admin_then_admins_only(as_user: As, churn: str) -> None:
    first = _one_error_line(as_user("alice", "users", "create", "alice"), 2)
    assert "first user must be an admin" in first
    created = _json(
        as_user(
            "alice", "users", "create", "alice", "--role", "admin", "--role", "approver", "--json"
        )
    )
    assert created["roles"] == ["admin", "approver"] and created["created_by"] == "alice"
    viewer = _json(as_user("alice", "users", "create", "dan", "--json"))
    assert viewer["roles"] == ["viewer"]
    denied = _one_error_line(as_user("dan", "users", "create", "eve", "--role", "admin"), 4)
    assert "only admins create users" in denied
    assert "exists already" in _one_error_line(as_user("alice", "users", "create", "dan"), 2)
    assert "unknown role(s) wizard" in _one_error_line(
        as_user("alice", "users", "grant", "dan", "--role", "wizard"), 2
    )
    assert _json(as_user("alice", "users", "grant", "dan", "--role", "editor", "--json"))[
        "roles"
    ] == ["editor", "viewer"]
    assert "does not hold the admin role" in _one_error_line(
        as_user("dan", "users", "revoke", "alice", "--role", "admin"), 4
    )
    revoked = as_user("alice", "users", "revoke", "dan", "--role", "viewer")
    assert revoked.exit_code == 0 and "revoked dan: roles editor" in revoked.output
    users = _json(as_user("alice", "users", "list", "--json"))
    assert [(u["name"], u["roles"]) for u in users] == [
        ("alice", ["admin", "approver"]),
        ("dan", ["editor"]),
    ]
    listed = as_user("alice", "users", "list")
    assert "admin, approver" in listed.output


def test_show_says_why_a_model_has_no_onnx_export(cli: Invoke, tmp_path: Path) -> None:
    assert cli("init").exit_code == 0
    with shipyard.connect(tmp_path, user="alice") as project:
        project.models.log_model(Constant(), "plain")
    shown = _json(cli("models", "show", "plain", "--json"))
    assert (shown["flavor"], shown["onnx"]["status"], shown["signature"]) == (
        "python",
        "unavailable",
        None,
    )
    text = cli("models", "show", "plain@1")
    assert "unavailable: no input example to convert and check with" in text.output
    assert "python_model.pkl" in text.output

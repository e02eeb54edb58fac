"""The CLI against a server: `shipyard data …` with SHIPYARD_URI and SHIPYARD_TOKEN set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import shipyard.errors as sy_errors

from .conftest import Invoke, Team


def test_data_commands_work_through_the_server(
    remote_cli: Invoke, team: Team, tmp_path: Path
) -> None:
    source = tmp_path / "people.csv"
    source.write_text("id,age,city\n1,31,Oslo\n2,45,Lima\n3,27,Pune\n")
    added = remote_cli("data", "add", "people", str(source), "--key", "id", "--json")
    assert added.exit_code == 0, added.output
    assert json.loads(added.output)["version"]["ref"] == "people@1"
    assert team.project.datasets.resolve("people@1").created_by == "eddie"
    source.write_text("id,age,city\n1,31,Oslo\n2,46,Lima\n4,60,Kyiv\n")
    assert remote_cli("data", "add", "people", str(source), "--key", "id").exit_code == 0

    listed = json.loads(remote_cli("data", "list", "--json").output)
    assert [d["name"] for d in listed] == ["people"]
    shown = remote_cli("data", "show", "people@1")
    assert shown.exit_code == 0 and "age" in shown.output
    got = remote_cli("data", "get", "people@2", "-o", str(tmp_path / "out"))
    assert got.exit_code == 0, got.output
    assert (tmp_path / "out" / "people.csv").read_text() == source.read_text()
    changed = json.loads(remote_cli("data", "diff", "people@1", "people@2", "--json").output)
    assert changed["rows"]["added"] == 1 and changed["rows"]["removed"] == 1
    checks = tmp_path / "checks.toml"
    checks.write_text('[[checks]]\nkind = "range"\ncolumn = "age"\nmax = 50\n')
    failing = remote_cli("data", "validate", "people@2", "--checks", str(checks))
    assert failing.exit_code == 1
    assert remote_cli("data", "label", "people@1", "golden").exit_code == 0
    assert team.project.datasets.resolve("people@golden").version == 1
    assert not (Path.cwd() / ".shipyard").exists()  # nothing was written on the laptop


def test_commands_without_remote_support_refuse_instead_of_acting_locally(
    remote_cli: Invoke,
) -> None:
    for command in (["gc"], ["blobs", "list"]):
        answer = remote_cli(*command)
        assert answer.exit_code != 0, command
        assert "SHIPYARD_URI" in answer.output, command
    assert not (Path.cwd() / ".shipyard").exists()


def test_registry_commands_work_through_the_server(
    remote_cli: Invoke, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.datasets import load_wine
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_wine(return_X_y=True, as_frame=True)
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    team.project.models.log_model(model, "wine", input_example=X[:5])
    listed = json.loads(remote_cli("models", "list", "--json").output)
    assert [m["name"] for m in listed] == ["wine"]
    shown = remote_cli("models", "show", "wine@1")
    assert shown.exit_code == 0 and "shipyard-model.json" in shown.output
    assert remote_cli("models", "alias", "wine@1", "candidate").exit_code == 0
    assert team.project.registry.resolve("wine@candidate").version == 1
    asked = remote_cli(
        "models", "request", "wine@1", "--to", "champion", "--reason", "ok", "--json"
    )
    assert asked.exit_code == 0, asked.output
    request_id = json.loads(asked.output)["id"]
    monkeypatch.setenv("SHIPYARD_TOKEN", team.tokens["approver"])
    assert remote_cli("models", "approve", request_id).exit_code == 0
    assert team.project.registry.resolve("wine@champion").version == 1
    for command, empty in ((("deployments", "list"), []), (("pipelines", "list"), {"runs": []})):
        answer = remote_cli(*command, "--json")
        assert answer.exit_code == 0, answer.output
        assert json.loads(answer.output) == empty


def test_a_viewer_token_cannot_add(
    remote_cli: Invoke, team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_TOKEN", team.tokens["viewer"])
    (tmp_path / "t.csv").write_text("a\n1\n")
    answer = remote_cli("data", "add", "t", str(tmp_path / "t.csv"))
    assert answer.exit_code != 0
    assert "vic" in answer.output


def test_run_commands_work_through_the_server(
    remote_cli: Invoke, team: Team, tmp_path: Path
) -> None:
    ids = []
    for depth in (3, 5):
        with team.project.runs.start_run("remote-cli", capture=False) as run:
            run.log_param("depth", depth)
            for step in range(10):
                run.log_metric("loss", 1 / (step + depth))
            run.log_text("notes", "notes.txt")
        ids.append(run.id)
    listed = json.loads(remote_cli("runs", "list", "--experiment", "remote-cli", "--json").output)
    assert sorted(r["id"] for r in listed["runs"]) == sorted(ids)
    shown = json.loads(remote_cli("runs", "show", ids[0][-6:], "--json").output)
    assert shown["id"] == ids[0]
    assert [a["path"] for a in shown["artifacts"]] == ["notes.txt"]
    history = json.loads(remote_cli("runs", "history", ids[1], "--json").output)
    assert history["metrics"][0]["count"] == 10
    page = tmp_path / "compare.html"
    compared = remote_cli("runs", "compare", *ids, "--html", str(page))
    assert compared.exit_code == 0, compared.output
    assert "<svg" in page.read_text()


def test_an_admin_manages_users_and_tokens_through_the_server(
    remote_cli: Invoke, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    denied = remote_cli("users", "create", "zed")  # the editor's token
    assert denied.exit_code != 0 and "admin" in denied.output
    monkeypatch.setenv("SHIPYARD_TOKEN", team.tokens["admin"])
    made = remote_cli("users", "create", "zed", "--role", "editor", "--json")
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["roles"] == ["editor"]
    assert remote_cli("users", "grant", "zed", "--role", "approver").exit_code == 0
    assert team.project.users.roles("zed") == {"editor", "approver"}
    assert remote_cli("users", "revoke", "zed", "--role", "editor").exit_code == 0
    assert team.project.users.roles("zed") == {"approver"}
    created = remote_cli("tokens", "create", "zed", "--name", "ci", "--expires", "12h", "--json")
    assert created.exit_code == 0, created.output
    token = json.loads(created.output)
    found = team.project.tokens.verify(token["secret"])
    assert found.user == "zed"
    listed = json.loads(remote_cli("tokens", "list", "--user", "zed", "--json").output)
    assert [t["id"] for t in listed] == [token["id"]]
    assert listed[0]["expires_at"] is not None
    assert remote_cli("tokens", "revoke", token["id"]).exit_code == 0
    with pytest.raises(sy_errors.UnauthenticatedError):
        team.project.tokens.verify(token["secret"])
    names = {u["name"] for u in json.loads(remote_cli("users", "list", "--json").output)}
    assert {"alice", "zed"} <= names


def test_the_audit_log_is_read_and_verified_through_the_server(
    remote_cli: Invoke, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert remote_cli("audit", "list").exit_code != 0  # an editor may not read it
    monkeypatch.setenv("SHIPYARD_TOKEN", team.tokens["approver"])
    entries = json.loads(remote_cli("audit", "list", "--kind", "user", "--json").output)
    assert {e["entity_id"] for e in entries} >= {"alice", "vic", "eddie", "april"}
    checked = remote_cli("audit", "verify", "--json")
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.output)["ok"] is True


def test_lineage_is_walked_through_the_server(
    remote_cli: Invoke, team: Team, tmp_path: Path
) -> None:
    (tmp_path / "d.csv").write_text("a,b\n1,2\n")
    team.project.datasets.add("raw", tmp_path / "d.csv")
    with team.project.runs.start_run("lineage", capture=False) as run:
        run.use_dataset("raw@1")
    page = tmp_path / "lineage.html"
    shown = remote_cli("lineage", "raw@latest", "--json", "--html", str(page))
    assert shown.exit_code == 0, shown.output
    graph = json.loads(shown.output)
    assert graph["root"] == {"kind": "dataset_version", "id": "raw@1"}
    assert [(e["to_kind"], e["to_id"]) for e in graph["downstream"]] == [("run", run.id)]
    assert run.id in page.read_text()
    by_run = json.loads(remote_cli("lineage", run.id[-8:], "--json").output)
    assert by_run["root"]["kind"] == "run"

"""``shipyard tokens create / list / revoke``."""

from __future__ import annotations

import json

import pytest

from .conftest import Invoke


def _team(cli: Invoke) -> None:
    assert cli("init").exit_code == 0
    assert cli("users", "create", "alice", "--role", "admin").exit_code == 0


def test_create_prints_the_secret_once_and_list_never_does(
    cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_USER", "alice")
    _team(cli)
    made = cli("tokens", "create", "alice", "--name", "laptop", "--expires", "30d", "--json")
    assert made.exit_code == 0, made.output
    token = json.loads(made.output)
    assert token["secret"].startswith("sy_") and token["expires_at"]
    listed = cli("tokens", "list", "--json")
    assert listed.exit_code == 0
    assert [t["id"] for t in json.loads(listed.output)] == [token["id"]]
    assert token["secret"] not in listed.output
    human = cli("tokens", "list")
    assert "laptop" in human.output and token["secret"] not in human.output


def test_revoke_marks_the_token_revoked(cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_USER", "alice")
    _team(cli)
    token = json.loads(cli("tokens", "create", "alice", "--json").output)
    done = cli("tokens", "revoke", token["id"], "--json")
    assert done.exit_code == 0
    assert json.loads(done.output)["active"] is False
    assert "revoked" in cli("tokens", "list").output


def test_bad_input_is_a_clear_error_and_changes_nothing(
    cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_USER", "alice")
    _team(cli)
    unknown = cli("tokens", "create", "nobody")
    assert unknown.exit_code == 2 and "nobody" in unknown.output
    bad_expiry = cli("tokens", "create", "alice", "--expires", "forever")
    assert bad_expiry.exit_code == 2 and "duration" in bad_expiry.output
    missing = cli("tokens", "revoke", "0" * 32)
    assert missing.exit_code == 2
    assert json.loads(cli("tokens", "list", "--json").output) == []


def test_a_non_admin_cannot_create_tokens(cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_USER", "alice")
    _team(cli)
    assert cli("users", "create", "bob").exit_code == 0
    monkeypatch.setenv("SHIPYARD_USER", "bob")
    refused = cli("tokens", "create", "bob")
    assert refused.exit_code == 4 and "admin" in refused.output

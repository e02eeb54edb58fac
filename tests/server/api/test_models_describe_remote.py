"""A registered model's description and tags over HTTP: the route, the client, the CLI, sy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from typer.testing import Result

from shipyard.client import RemoteProject
from shipyard.errors import InvalidArgumentError, NotFoundError, PermissionDeniedError
from shipyard.server.api.policy import API_PREFIX

from .conftest import Invoke, Team


@pytest.fixture
def churn(team: Team) -> None:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    team.project.models.log_model(Ridge().fit(X, y), "churn", onnx=False)


def test_the_remote_registry_describes_a_model_as_the_token_user(team: Team, churn: None) -> None:
    with RemoteProject(team.url, team.tokens["editor"]) as editor:
        made = editor.registry.update_model(
            "churn", description="Who leaves", tags={"team": "growth", "tier": "gold"}
        )
        assert made.description == "Who leaves"
        assert dict(made.tags) == {"team": "growth", "tier": "gold"}
        # JSON null removes a tag, like None locally; the description is kept.
        merged = editor.registry.update_model("churn", tags={"tier": None, "owner": "eddie"})
        assert dict(merged.tags) == {"owner": "eddie", "team": "growth"}
        assert merged.description == "Who leaves" and merged.latest_version == 1
        assert editor.registry.model("churn").to_dict() == merged.to_dict()
        with pytest.raises(NotFoundError, match="model 'nobody' does not exist"):
            editor.registry.update_model("nobody", description="x")
        with pytest.raises(NotFoundError, match="model 'nobody' does not exist"):
            editor.registry.model("nobody")
        with pytest.raises(InvalidArgumentError):
            editor.registry.update_model("churn", description="a\x00b")
    local = team.project.registry.model("churn")
    assert local.to_dict() == merged.to_dict()
    entries = team.project.audit.list(entity_kind="registered_model")
    assert [(e.actor, e.action, e.entity_id) for e in entries] == [
        ("eddie", "model.update", "churn")
    ] * 2
    assert entries[1].before["tags"] == {"team": "growth", "tier": "gold"}


def test_a_viewer_reads_a_model_but_cannot_describe_it(team: Team, churn: None) -> None:
    team.project.registry.update_model("churn", description="kept")
    with RemoteProject(team.url, team.tokens["viewer"]) as viewer:
        assert viewer.registry.model("churn").description == "kept"
        with pytest.raises(PermissionDeniedError):
            viewer.registry.update_model("churn", description="changed")
    with team.client("viewer") as http:
        refused = http.patch(f"{API_PREFIX}/models/churn", json={"description": "changed"})
    assert refused.status_code == 403
    with team.client("editor") as http:
        too_long = http.patch(f"{API_PREFIX}/models/churn", json={"tags": {"k": "x" * 6001}})
        unknown_field = http.patch(f"{API_PREFIX}/models/churn", json={"owner": "me"})
    assert too_long.status_code == 422 and unknown_field.status_code == 422
    assert team.project.registry.model("churn").description == "kept"
    assert len(team.project.audit.list(entity_kind="registered_model")) == 1


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_the_cli_describes_a_model_on_the_server(
    team: Team, churn: None, remote_cli: Invoke
) -> None:
    made = _json(
        remote_cli("models", "describe", "churn", "-d", "Who leaves", "--tag", "a=b", "--json")
    )
    assert made == team.project.registry.model("churn").to_dict()
    assert team.project.registry.model("churn").tags == {"a": "b"}
    removed = _json(remote_cli("models", "describe", "churn", "--tag", "a=", "--json"))
    assert removed["tags"] == {} and removed["description"] == "Who leaves"
    shown = _json(remote_cli("models", "show", "churn@1", "--json"))
    assert shown["model"]["description"] == "Who leaves"
    unknown = remote_cli("models", "describe", "nobody", "-d", "x")
    assert unknown.exit_code == 2 and "model 'nobody' does not exist" in unknown.output


def test_sy_registry_update_model_goes_to_the_server(
    team: Team, churn: None, tmp_path: Path
) -> None:
    script = (
        "import shipyard as sy\n"
        "m = sy.registry.update_model('churn', description='from sy', tags={'via': 'sdk'})\n"
        "print(type(sy.registry).__name__, m.description, dict(m.tags))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(SHIPYARD_URI=team.url, SHIPYARD_TOKEN=team.tokens["editor"])
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == "RemoteRegistryService from sy {'via': 'sdk'}"
    model = team.project.registry.model("churn")
    assert (model.description, dict(model.tags)) == ("from sy", {"via": "sdk"})
    [entry] = team.project.audit.list(entity_kind="registered_model")
    assert entry.actor == "eddie"

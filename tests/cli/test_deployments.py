from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import Result

import shipyard

Invoke = Callable[..., Result]


@pytest.fixture
def deployed(cli: Invoke, tmp_path: Path) -> dict[str, str]:
    """``churn@1`` trained on ``customers@1`` by a run, then deployed; stopped ``churn@2`` too."""
    assert cli("init").exit_code == 0
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0, 0, 1, 1]})
    with shipyard.connect(tmp_path, user="alice") as project:
        version = project.datasets.add("customers", frame).version
        with project.runs.start_run("churn", capture=False) as run:
            run.use_dataset(version.ref)
            model = LogisticRegression().fit(frame[["x"]], frame["y"])
            run.log_model(model, "churn", input_example=frame[["x"]][:2])
            run.log_model(model, "churn", input_example=frame[["x"]][:2])
        first = project.deployments.start(
            name="churn", version=1, alias="champion", url="http://127.0.0.1:8000", runtime="native"
        )
        second = project.deployments.start(
            name="churn", version=2, alias=None, url="http://127.0.0.1:8001", runtime="native"
        )
        project.deployments.stop(second.id)
    return {"running": first.id, "stopped": second.id, "run": run.id}


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _one_error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_list_shows_deployments_newest_first_and_filters(
    cli: Invoke, deployed: dict[str, str]
) -> None:
    listed = _json(cli("deployments", "list", "--json"))
    assert [(d["id"], d["ref"], d["status"]) for d in listed] == [
        (deployed["stopped"], "churn@2", "stopped"),
        (deployed["running"], "churn@1", "running"),
    ]
    running = _json(cli("deployments", "list", "--status", "running", "--json"))
    assert [d["id"] for d in running] == [deployed["running"]]
    assert _json(cli("deployments", "list", "--model", "other", "--json")) == []
    text = cli("deployments", "list")
    assert text.exit_code == 0, text.output
    assert deployed["running"] in text.output and "running" in text.output


def test_show_prints_one_deployment(cli: Invoke, deployed: dict[str, str]) -> None:
    shown = _json(cli("deployments", "show", deployed["running"], "--json"))
    assert (shown["ref"], shown["alias"], shown["url"], shown["started_by"]) == (
        "churn@1",
        "champion",
        "http://127.0.0.1:8000",
        "alice",
    )
    text = cli("deployments", "show", deployed["stopped"])
    assert text.exit_code == 0, text.output
    assert "stopped" in text.output and "http://127.0.0.1:8001" in text.output


def test_unknown_ids_and_statuses_are_one_line_errors(
    cli: Invoke, deployed: dict[str, str]
) -> None:
    assert "deployment 'nope' does not exist" in _one_error_line(cli("deployments", "show", "nope"))
    assert "status is one of running, stopped" in _one_error_line(
        cli("deployments", "list", "--status", "paused")
    )


def test_lineage_of_a_deployment_reaches_the_dataset(cli: Invoke, deployed: dict[str, str]) -> None:
    graph = _json(cli("lineage", deployed["running"], "--kind", "deployment", "--json"))
    assert {(e["from_id"], e["relation"], e["to_id"]) for e in graph["upstream"]} == {
        ("churn@1", "deployed_as", deployed["running"]),
        (deployed["run"], "produced", "churn@1"),
        ("customers@1", "consumed_by", deployed["run"]),
    }
    down = _json(cli("lineage", "customers@1", "--json"))
    assert ("churn@1", "deployed_as", deployed["running"]) in {
        (e["from_id"], e["relation"], e["to_id"]) for e in down["downstream"]
    }

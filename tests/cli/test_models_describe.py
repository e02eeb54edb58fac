"""``shipyard models describe``: a registered model's description and tags from the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from typer.testing import Result

import shipyard
from shipyard.cli.output import console

Invoke = Callable[..., Result]


@pytest.fixture
def churn(cli: Invoke, tmp_path: Path) -> None:
    """A project with one version of the model ``churn``."""
    assert cli("init").exit_code == 0
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    with shipyard.connect(tmp_path, user="alice") as project:
        project.models.log_model(Ridge().fit(X, y), "churn", onnx=False)


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_describe_sets_the_description_and_merges_tags_shown_by_list_and_show(
    cli: Invoke, churn: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "width", 200)  # tables on one line each, to read them back
    made = _json(
        cli(
            "models",
            "describe",
            "churn",
            "--description",
            "Who leaves next month",
            "--tag",
            "team=growth",
            "--tag",
            "tier=gold",
            "--json",
        )
    )
    assert made["name"] == "churn" and made["description"] == "Who leaves next month"
    assert made["tags"] == {"team": "growth", "tier": "gold"} and made["latest_version"] == 1

    # KEY= removes a tag, a value with '=' in it is kept whole, the description stays.
    merged = _json(
        cli("models", "describe", "churn", "--tag", "tier=", "--tag", "query=a=b", "--json")
    )
    assert merged["description"] == "Who leaves next month"
    assert merged["tags"] == {"query": "a=b", "team": "growth"}

    [listed] = _json(cli("models", "list", "--json"))
    assert (listed["description"], listed["tags"]) == (merged["description"], merged["tags"])
    table = cli("models", "list")
    assert table.exit_code == 0 and "query=a=b, team=growth" in table.output
    assert "Who leaves next month" in table.output
    shown = _json(cli("models", "show", "churn@1", "--json"))
    assert shown["model"]["tags"] == {"query": "a=b", "team": "growth"}
    assert shown["tags"] == {}, "a version keeps its own tags"
    text = cli("models", "show", "churn@1")
    assert text.exit_code == 0
    assert "model tags" in text.output and "query=a=b, team=growth" in text.output
    assert "Who leaves next month" in text.output

    # Without options it shows the model; -d '' clears the description.
    plain = cli("models", "describe", "churn")
    assert plain.exit_code == 0 and "Who leaves next month" in plain.output
    assert "team=growth" in plain.output
    cleared = _json(cli("models", "describe", "churn", "-d", "", "--json"))
    assert cleared["description"] is None and cleared["tags"] == merged["tags"]

    entries = _json(cli("audit", "list", "--kind", "registered_model", "--json"))
    assert [(e["action"], e["entity_id"]) for e in entries] == [("model.update", "churn")] * 3
    assert entries[1]["before"]["tags"] == {"team": "growth", "tier": "gold"}
    assert entries[1]["after"]["tags"] == {"query": "a=b", "team": "growth"}


def test_describe_an_unknown_model_or_a_malformed_tag_is_one_error_line(
    cli: Invoke, churn: None
) -> None:
    unknown = cli("models", "describe", "nobody", "-d", "x")
    assert unknown.exit_code == 2, unknown.output
    assert unknown.output.strip().splitlines() == [
        "error: model 'nobody' does not exist; `shipyard models list` shows them (a model "
        "exists once a version of it is logged)"
    ]
    malformed = cli("models", "describe", "churn", "--tag", "no-equals-sign")
    assert malformed.exit_code == 2, malformed.output
    assert "write the tag as KEY=VALUE" in malformed.output
    nul = cli("models", "describe", "churn", "-d", "a\x00b")
    assert nul.exit_code != 0 and "Traceback" not in nul.output
    [model] = _json(cli("models", "list", "--json"))
    assert (model["description"], model["tags"]) == (None, {})
    assert _json(cli("audit", "list", "--kind", "registered_model", "--json")) == []

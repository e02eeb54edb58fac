from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sqlalchemy import create_engine, update
from typer.testing import Result

import shipyard
from shipyard.domain.lineage import Node
from shipyard.stores.metadata.schema import audit_log

Invoke = Callable[..., Result]

EVIL = "<script>alert('x')</script>&\""


@pytest.fixture
def trained(cli: Invoke, tmp_path: Path) -> str:
    """A dataset version consumed by a run that produced ``ridge@1``; returns the run id."""
    assert cli("init").exit_code == 0
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    with shipyard.connect(tmp_path, user="alice") as project:
        dataset = project.datasets.add("diabetes", X.assign(target=y)).version
        project.datasets.label(dataset.ref, "training")
        with project.runs.start_run("ridge", capture=False) as run:
            run.use_dataset(dataset.ref)
            run.log_model(Ridge().fit(X, y), "ridge", onnx=False)
        return run.id


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _one_error_line(result: Result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    return lines[0]


def test_audit_list_pages_and_filters(cli: Invoke, trained: str) -> None:
    entries = _json(cli("audit", "list", "--json"))
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    actions = [(e["action"], e["entity_kind"], e["entity_id"]) for e in entries]
    assert ("model.register", "model_version", "ridge@1") in actions
    assert all(e["actor"] == "alice" for e in entries)
    assert entries[1]["prev_hash"] == entries[0]["hash"]

    models = _json(cli("audit", "list", "--kind", "model_version", "--json"))
    assert [e["entity_id"] for e in models] == ["ridge@1"]
    assert models[0]["after"]["run_id"] == trained
    page = _json(cli("audit", "list", "--after", "1", "--limit", "1", "--json"))
    assert [e["seq"] for e in page] == [2]

    text = cli("audit", "list", "--limit", "1")
    assert text.exit_code == 0, text.output
    assert "more: --after 1" in text.output
    assert "model.register" in cli("audit", "list").output


def test_audit_verify_exits_1_naming_the_edited_entry(
    cli: Invoke, trained: str, tmp_path: Path
) -> None:
    intact = cli("audit", "verify")
    assert intact.exit_code == 0, intact.output
    assert "intact" in intact.output
    assert _json(cli("audit", "verify", "--json"))["ok"] is True

    engine = create_engine(f"sqlite:///{tmp_path / '.shipyard' / 'shipyard.db'}")
    with engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 2).values(actor="mallory"))
    engine.dispose()

    broken = cli("audit", "verify")
    assert broken.exit_code == 1
    assert "broken at entry 2" in broken.output
    assert "changed after it was written" in broken.output
    assert "mallory" in broken.output
    report = json.loads(cli("audit", "verify", "--json").output)
    assert (report["ok"], report["broken_at"], report["entry"]["actor"]) == (False, 2, "mallory")


def test_lineage_tree_shows_the_dataset_and_the_run(cli: Invoke, trained: str) -> None:
    result = cli("lineage", "ridge@1")
    assert result.exit_code == 0, result.output
    text = result.output
    assert "model_version ridge@1" in text
    assert "diabetes@1" in text and trained in text
    assert text.index(trained) < text.index("diabetes@1"), "the run first, then its input"
    assert "(produced)" in text and "(consumed_by)" in text
    assert "downstream" in text and "(none recorded)" in text

    down = cli("lineage", "diabetes@training")
    assert down.exit_code == 0, down.output
    assert "dataset_version diabetes@1" in down.output
    assert down.output.index(trained) < down.output.index("ridge@1")


def test_lineage_json_resolves_aliases_kinds_and_runs(cli: Invoke, trained: str) -> None:
    graph = _json(cli("lineage", "ridge@latest", "--json"))
    assert graph["root"] == {"kind": "model_version", "id": "ridge@1"}
    assert {(e["from_id"], e["relation"], e["to_id"]) for e in graph["upstream"]} == {
        (trained, "produced", "ridge@1"),
        ("diabetes@1", "consumed_by", trained),
    }
    assert graph["downstream"] == []

    run = _json(cli("lineage", trained[-8:], "--kind", "run", "--json"))
    assert run["root"] == {"kind": "run", "id": trained}
    assert [e["to_id"] for e in run["downstream"]] == ["ridge@1"]
    assert _json(cli("lineage", trained, "--json"))["root"]["kind"] == "run"

    shallow = _json(cli("lineage", "ridge@1", "--depth", "1", "--json"))
    assert [e["relation"] for e in shallow["upstream"]] == ["produced"]


def test_a_name_both_a_model_and_a_dataset_means_the_model_unless_told(
    cli: Invoke, trained: str, tmp_path: Path
) -> None:
    with shipyard.connect(tmp_path, user="alice") as project:
        project.datasets.add("ridge", pd.DataFrame({"a": [1, 2, 3]}))
    assert _json(cli("lineage", "ridge@1", "--json"))["root"]["kind"] == "model_version"
    told = _json(cli("lineage", "ridge@1", "--kind", "dataset_version", "--json"))
    assert told["root"] == {"kind": "dataset_version", "id": "ridge@1"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("lineage", "nothing@1"), "no model version, dataset version or run answers"),
        (("lineage", "ridge@7", "--kind", "model_version"), "versions 1 to 1"),
        (("lineage", "ridge@1", "--kind", "table"), "unknown lineage kind 'table'"),
        (("lineage", "0" * 32, "--kind", "run"), "does not exist"),
        (("lineage", "bad@@ref"), "more than one '@'"),
    ],
)
def test_lineage_errors_are_one_line(
    cli: Invoke, trained: str, args: tuple[str, ...], message: str
) -> None:
    assert message in _one_error_line(cli(*args))


def test_lineage_html_is_self_contained_and_escaped(
    cli: Invoke, trained: str, tmp_path: Path
) -> None:
    with shipyard.connect(tmp_path, user="alice") as project, project.metadata.write() as conn:
        project.lineage.link(
            conn,
            Node("model_version", "ridge@1"),
            "deployed_as",
            Node("deployment", EVIL),
            actor="alice",
        )
    out = tmp_path / "reports" / "lineage.html"
    result = cli("lineage", "ridge@1", "--html", str(out))
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    page = out.read_text()
    assert "<svg" in page and "</svg>" in page
    assert not re.search(r"(src|href)\s*=", page), "nothing to fetch"
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;&quot;" in page
    for expected in ("diabetes@1", trained, "ridge@1", "consumed_by", "produced", "deployed_as"):
        assert expected in page
    assert EVIL in cli("lineage", "ridge@1").output  # the terminal shows it as text

    both = cli("lineage", "ridge@1", "--html", str(out), "--json")
    assert json.loads(both.output)["root"]["id"] == "ridge@1"

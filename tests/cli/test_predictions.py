from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from typer.testing import Result

import shipyard

Invoke = Callable[..., Result]


@pytest.fixture
def logged(cli: Invoke, tmp_path: Path) -> Path:
    """The model ``churn`` with 30 logged requests: 10 a day ago, 20 just now."""
    assert cli("init").exit_code == 0
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0]})
    now = time.time()
    with shipyard.connect(tmp_path, user="alice") as project:
        project.models.log_model(Ridge().fit(frame, [0, 1, 2]), "churn", input_example=frame)
        deployment = project.deployments.start(
            name="churn", version=1, alias=None, url="http://127.0.0.1:1", runtime="native"
        )
        with project.predictions.log(deployment_id=deployment.id, name="churn") as log:
            for i in range(30):
                log.record(
                    request_id=f"r{i}",
                    at=now - 86_400 if i < 10 else now - 30 + i,
                    version=1,
                    inputs=[{"x": float(i)}],
                    outputs=[i * 0.5],
                    latency=0.002,
                )
    return tmp_path


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _one_error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_show_prints_the_newest_rows_of_the_window(cli: Invoke, logged: Path) -> None:
    newest = _json(cli("predictions", "show", "churn", "--limit", "3", "--json"))
    assert [r["request_id"] for r in newest] == ["r27", "r28", "r29"]
    assert newest[0]["x"] == 27.0 and newest[0]["prediction"] == 13.5
    recent = _json(cli("predictions", "show", "churn", "--since", "1h", "--limit", "100", "--json"))
    assert len(recent) == 20
    old = _json(cli("predictions", "show", "churn", "--until", "1h", "--limit", "100", "--json"))
    assert len(old) == 10
    text = cli("predictions", "show", "churn", "--limit", "2")
    assert text.exit_code == 0, text.output
    assert "r29" in text.output and "2 row(s)" in text.output


def test_feedback_file_labels_show_up_as_the_label_column(
    cli: Invoke, logged: Path, tmp_path: Path
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,y\nr29,1\nr28,0\nr29,0\n")
    stored = _json(
        cli("predictions", "feedback", "churn", str(labels), "--label-column", "y", "--json")
    )
    assert stored == {"model": "churn", "stored": 2}
    rows = _json(cli("predictions", "show", "churn", "--limit", "2", "--json"))
    assert [(r["request_id"], r["label"]) for r in rows] == [("r28", 0), ("r29", 0)]
    text = cli("predictions", "feedback", "churn", str(labels), "--label-column", "y")
    assert "stored 2 label(s) for churn" in text.output


def test_query_runs_sql_over_the_log(cli: Invoke, logged: Path) -> None:
    result = _json(
        cli(
            "predictions",
            "query",
            "churn",
            "select count(*) as n, max(prediction) as top from predictions",
            "--json",
        )
    )
    assert result == [{"n": 30, "top": 14.5}]
    text = cli("predictions", "query", "churn", "select count(*) as n from predictions")
    assert text.exit_code == 0 and "30" in text.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("predictions", "show", "ghost"), "model 'ghost' does not exist"),
        (("predictions", "show", "churn", "--since", "soon"), "neither a duration"),
        (
            ("predictions", "show", "churn", "--since", "1h", "--until", "2h"),
            "is later than until",
        ),
        (("predictions", "feedback", "churn", "missing.csv"), "no such file"),
        (("predictions", "feedback", "ghost", "labels.csv"), "model 'ghost' does not exist"),
        (("predictions", "feedback", "churn", "labels.csv"), "no column 'label'"),
        (("predictions", "query", "churn", "select * from nowhere"), "query failed"),
    ],
)
def test_bad_input_is_a_one_line_error(
    cli: Invoke, logged: Path, args: tuple[str, ...], message: str
) -> None:
    (logged / "labels.csv").write_text("request_id,y\nr1,1\n")
    assert message in _one_error_line(cli(*args))


def test_sy_predictions_reads_the_working_directory_project(logged: Path) -> None:
    code = (
        "import shipyard as sy; from datetime import datetime, timedelta, UTC; "
        "print(sy.predictions.read('churn', since=datetime.now(UTC) - timedelta(hours=1))"
        ".num_rows)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=logged,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == "20"

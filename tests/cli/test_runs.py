from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

import shipyard
from shipyard.cli.output import console

Invoke = Callable[..., Result]


@pytest.fixture
def runs(cli: Invoke, tmp_path: Path) -> dict[str, str]:
    """A project with three runs of "churn" and one of "other", by name."""
    assert cli("init").exit_code == 0
    (tmp_path / "notes.txt").write_text("hello")
    ids: dict[str, str] = {}
    with shipyard.connect(tmp_path) as project:
        for i, model in enumerate(("xgb", "xgb", "rf")):
            with project.runs.start_run(
                "churn", name=f"r{i}", tags={"team": "growth"}, capture=i == 0
            ) as run:
                run.log_params({"model": model, "depth": 5, "lr": 0.1 * (i + 1)})
                for step in range(3000):
                    run.log_metric("loss", 1.0 / (step + 1) + (9.0 if step == 1234 else 0.0))
                run.log_metric("auc", 0.9 + i / 100)
                run.log_metric("<script>", math.inf)
                run.log_metric("<script>", 2.0)
                run.log_artifact(tmp_path / "notes.txt", "docs")
            ids[f"r{i}"] = run.id
        with project.runs.start_run("other", name="odd", capture=False) as run:
            run.log_metric("x", math.nan)
        ids["odd"] = run.id
    return ids


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


def _no_network(html: str) -> None:
    assert "http://" not in html and "https://" not in html


# -- list ------------------------------------------------------------------------------------


def test_list_prints_every_run_as_json_newest_first(cli: Invoke, runs: dict[str, str]) -> None:
    listed = _json(cli("runs", "list", "--json"))
    assert listed["next_page_token"] is None
    assert [r["name"] for r in listed["runs"]] == ["odd", "r2", "r1", "r0"]
    first = listed["runs"][-1]
    assert first["id"] == runs["r0"] and first["experiment"] == "churn"
    assert first["status"] == "finished" and first["duration"] >= 0
    assert first["params"] == {"model": "xgb", "depth": "5", "lr": "0.1"}
    assert first["tags"] == {"team": "growth"}
    assert first["metrics"]["loss"]["count"] == 3000
    assert first["metrics"]["<script>"]["max"] == "Infinity"
    assert first["environment"]["python"]["version"]
    assert listed["runs"][0]["metrics"]["x"]["value"] == "NaN"


def test_list_filters_orders_and_limits_to_experiments(cli: Invoke, runs: dict[str, str]) -> None:
    found = _json(
        cli(
            "runs",
            "list",
            "--experiment",
            "churn",
            "--filter",
            "metrics.auc >= 0.905 or params.model = 'rf'",
            "--order-by",
            "metrics.auc desc",
            "--json",
        )
    )
    assert [r["name"] for r in found["runs"]] == ["r2", "r1"]
    both = _json(cli("runs", "list", "-e", "churn", "-e", "other", "-o", "name", "--json"))
    assert [r["name"] for r in both["runs"]] == ["odd", "r0", "r1", "r2"]
    rf = _json(cli("runs", "list", "-f", "params.model = 'rf' and tags.team = 'growth'", "--json"))
    assert [r["id"] for r in rf["runs"]] == [runs["r2"]]
    assert _json(cli("runs", "list", "-e", "nowhere", "--json"))["runs"] == []


def test_list_pages_with_the_printed_token(cli: Invoke, runs: dict[str, str]) -> None:
    first = _json(cli("runs", "list", "--max-results", "3", "--json"))
    token = first["next_page_token"]
    assert len(first["runs"]) == 3 and token
    second = _json(cli("runs", "list", "--max-results", "3", "--page-token", token, "--json"))
    assert second["next_page_token"] is None
    seen = [r["id"] for r in first["runs"] + second["runs"]]
    assert sorted(seen) == sorted(runs.values())
    human = cli("runs", "list", "-n", "3")
    assert human.exit_code == 0
    assert f"--page-token {token}" in human.output


def test_list_shows_short_ids_status_and_common_keys(
    cli: Invoke, runs: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "width", 200)
    result = cli("runs", "list", "-e", "churn")
    assert result.exit_code == 0, result.output
    for name in ("r0", "r1", "r2"):
        assert runs[name][-8:] in result.output
    assert "finished" in result.output and "3 run(s)" in result.output
    header = result.output.splitlines()[2]
    for column in ("auc", "loss", "params.depth", "params.model"):
        assert column in header
    assert "--page-token" not in result.output


def test_a_bad_filter_is_one_line_naming_the_position(cli: Invoke, runs: dict[str, str]) -> None:
    line = _one_error_line(cli("runs", "list", "--filter", "metrics.auc > 0.9 and"))
    assert "at position 22" in line and "expected a field" in line
    assert "position 13" in _one_error_line(cli("runs", "list", "-f", "metrics.auc >> 0.9"))
    assert "is a number" in _one_error_line(cli("runs", "list", "-f", "metrics.auc > 'high'"))
    assert "asc" in _one_error_line(cli("runs", "list", "--order-by", "metrics.auc sideways"))
    assert "max_results" in _one_error_line(cli("runs", "list", "-n", "0"))
    assert "page_token" in _one_error_line(cli("runs", "list", "--page-token", "garbage"))


# -- show ------------------------------------------------------------------------------------


def test_show_prints_a_run_with_artifacts_as_json(cli: Invoke, runs: dict[str, str]) -> None:
    shown = _json(cli("runs", "show", runs["r0"], "--json"))
    assert shown["id"] == runs["r0"] and shown["name"] == "r0"
    assert shown["artifacts"][0]["path"] == "docs/notes.txt"
    assert shown["artifacts"][0]["size"] == 5
    assert shown["metrics"]["auc"]["value"] == pytest.approx(0.9)
    assert shown["resources"]["wall_seconds"] >= 0
    assert set(shown["environment"]) >= {"git", "python", "host", "packages"}


def test_show_takes_a_short_id_and_renders_every_section(
    cli: Invoke, runs: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "width", 200)
    result = cli("runs", "show", runs["r0"][-8:])
    assert result.exit_code == 0, result.output
    out = result.output
    assert runs["r0"] in out
    for text in ("finished", "params", "tags", "growth", "metrics", "docs/notes.txt"):
        assert text in out
    for text in ("environment", "python", "resources", "peak memory", "<script>"):
        assert text in out
    assert _json(cli("runs", "show", runs["r0"][-5:], "--json"))["id"] == runs["r0"]


@pytest.mark.parametrize(
    "args",
    [
        ("show", "0" * 32),
        ("show", "abcdef12"),
        ("show", "not-an-id"),
        ("history", "0" * 32),
        ("compare", "0" * 32, "1" * 32),
    ],
)
def test_an_unknown_run_id_exits_2(cli: Invoke, runs: dict[str, str], args: tuple[str]) -> None:
    assert "does not exist" in _one_error_line(cli("runs", *args))


# -- compare ---------------------------------------------------------------------------------


def test_compare_lays_runs_side_by_side_and_flags_differences(
    cli: Invoke, runs: dict[str, str]
) -> None:
    compared = _json(cli("runs", "compare", runs["r0"], runs["r2"], runs["odd"], "--json"))
    assert [r["name"] for r in compared["runs"]] == ["r0", "r2", "odd"]
    rows = {(r["section"], r["key"]): r for r in compared["rows"]}
    assert rows["param", "model"]["values"] == ["xgb", "rf", None]
    assert rows["param", "model"]["differs"]
    assert rows["attribute", "experiment"]["differs"]
    assert rows["metric", "x"]["values"] == [None, None, "NaN"]
    same = _json(cli("runs", "compare", runs["r0"], runs["r1"], "--json"))
    rows = {(r["section"], r["key"]): r for r in same["rows"]}
    assert not rows["param", "model"]["differs"] and rows["param", "lr"]["differs"]
    assert same["shared_metrics"] == ["<script>", "auc", "loss"]


def test_compare_prints_a_table_and_counts_differences(cli: Invoke, runs: dict[str, str]) -> None:
    result = cli("runs", "compare", runs["r0"], runs["r1"][-8:])
    assert result.exit_code == 0, result.output
    assert "params.model" in result.output and "metrics.auc" in result.output
    assert "field(s) differ" in result.output


def test_compare_needs_two_different_runs(cli: Invoke, runs: dict[str, str]) -> None:
    line = _one_error_line(cli("runs", "compare", runs["r0"], runs["r0"][-8:]))
    assert "two or more" in line


def test_compare_writes_a_self_contained_html_page(
    cli: Invoke, runs: dict[str, str], tmp_path: Path
) -> None:
    page = tmp_path / "compare.html"
    result = cli("runs", "compare", runs["r0"], runs["r1"], runs["r2"], "--html", str(page))
    assert result.exit_code == 0, result.output
    assert f"wrote {page}" in result.output
    html = page.read_text()
    assert html.count("<svg") == 3, "one chart per shared metric"
    assert "<script" not in html and "&lt;script&gt;" in html
    assert f"r1 ({runs['r1'][-8:]})" in html, "a legend names each run"
    assert 'class="diff"' in html
    _no_network(html)


# -- history ---------------------------------------------------------------------------------


def test_history_prints_every_point_and_a_summary_as_json(
    cli: Invoke, runs: dict[str, str]
) -> None:
    found = _json(cli("runs", "history", runs["r0"], "--json"))
    assert found["run_id"] == runs["r0"]
    metrics = {m["key"]: m for m in found["metrics"]}
    assert list(metrics) == ["<script>", "auc", "loss"]
    loss = metrics["loss"]
    assert loss["count"] == 3000 and len(loss["values"]) == 3000 and len(loss["steps"]) == 3000
    assert (loss["first_step"], loss["last_step"]) == (0, 2999)
    assert loss["first"] == 1.0 and loss["max"] == pytest.approx(9.0 + 1 / 1235)
    script = metrics["<script>"]
    assert script["first"] == "Infinity" and script["last"] == 2.0 and script["inf"] == 1
    only = _json(cli("runs", "history", runs["odd"], "--metric", "x", "--json"))
    assert only["metrics"][0]["nan"] == 1 and only["metrics"][0]["min"] is None


def test_history_prints_a_table_per_key(cli: Invoke, runs: dict[str, str]) -> None:
    result = cli("runs", "history", runs["r0"], "-m", "loss", "-m", "<script>")
    assert result.exit_code == 0, result.output
    assert "loss" in result.output and "3,000" in result.output
    assert "1 ±inf" in result.output and "auc" not in result.output


def test_history_of_an_unknown_metric_exits_2(cli: Invoke, runs: dict[str, str]) -> None:
    line = _one_error_line(cli("runs", "history", runs["r0"], "--metric", "nope"))
    assert "no metric 'nope'" in line and "loss" in line


def test_history_writes_one_chart_per_metric(
    cli: Invoke, runs: dict[str, str], tmp_path: Path
) -> None:
    page = tmp_path / "out" / "history.html"
    page.parent.mkdir()
    result = cli("runs", "history", runs["r0"], "--html", str(page))
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert html.count("<svg") == 3
    assert "<script" not in html and "&lt;script&gt;" in html
    assert "3,000 points drawn as about 2,000" in html
    assert "1 infinite value(s) drawn at the edge" in html
    _no_network(html)


def test_an_html_file_that_cannot_be_written_is_one_error_line(
    cli: Invoke, runs: dict[str, str], tmp_path: Path
) -> None:
    target = tmp_path / "missing" / "page.html"
    assert "cannot write" in _one_error_line(
        cli("runs", "history", runs["r0"], "--html", str(target))
    )


# -- experiments and running runs ------------------------------------------------------------


def test_experiments_lists_every_experiment(cli: Invoke, runs: dict[str, str]) -> None:
    found = _json(cli("runs", "experiments", "--json"))
    assert [e["name"] for e in found] == ["churn", "other"]
    assert set(found[0]) == {"id", "name", "created_at", "created_by"}
    human = cli("runs", "experiments")
    assert human.exit_code == 0 and "churn" in human.output and "other" in human.output


def test_a_running_run_is_listed_as_running(cli: Invoke, tmp_path: Path) -> None:
    assert cli("init").exit_code == 0
    with shipyard.connect(tmp_path) as project:
        run = project.runs.start_run("live", capture=False)
        try:
            run.log_metric("m", 1.0)
            run.flush()
            listed = _json(cli("runs", "list", "--json"))
            assert listed["runs"][0]["status"] == "running"
            assert listed["runs"][0]["duration"] is None
            assert "running" in cli("runs", "show", run.id).output
        finally:
            run.end()
    assert _json(cli("runs", "show", run.id, "--json"))["status"] == "finished"

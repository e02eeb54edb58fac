from __future__ import annotations

import math
from pathlib import Path

import pytest

from shipyard.app import Shipyard, build
from shipyard.errors import InvalidArgumentError
from shipyard.services import run_search
from shipyard.settings import Settings


@pytest.fixture
def runs(project: Shipyard) -> list[str]:
    ids = []
    for i in range(12):
        with project.runs.start_run("churn" if i % 3 else "other", capture=False) as run:
            run.log_params({"max_depth": i % 4 + 2, "model": "rf" if i % 2 else "gbm"})
            run.log_metric("auc", 0.5 + i * 0.04)
            if i != 5:
                run.log_metric("loss", 1.0 - i * 0.05)
            run.set_tag("team", "a" if i < 6 else "b")
        ids.append(run.id)
    return ids


def _auc(project: Shipyard, found: list) -> list[float]:  # type: ignore[type-arg]
    return [round(r.metrics["auc"].value, 2) for r in found]


def test_filter_by_metric_and_param(project: Shipyard, runs: list[str]) -> None:
    found = project.runs.search("churn", filter="metrics.auc > 0.7 and params.model = 'rf'")
    assert sorted(_auc(project, found)) == [0.78, 0.94]
    assert all(r.experiment == "churn" and r.params["model"] == "rf" for r in found)


def test_order_by_metric_desc_with_missing_values_last(project: Shipyard, runs: list[str]) -> None:
    found = project.runs.search(order_by=["metrics.loss desc"])
    losses = [r.metrics["loss"].value if "loss" in r.metrics else None for r in found]
    assert losses[-1] is None
    present = [v for v in losses if v is not None]
    assert present == sorted(present, reverse=True)


def test_or_parentheses_in_and_null_tests(project: Shipyard, runs: list[str]) -> None:
    found = project.runs.search(
        filter="(tags.team = 'a' or metrics.auc >= 0.9) and metrics.loss is null"
    )
    assert [round(r.metrics["auc"].value, 2) for r in found] == [0.7]
    found = project.runs.search(filter="params.max_depth in ('2', '3')")
    assert {r.params["max_depth"] for r in found} == {"2", "3"}
    found = project.runs.search(filter="params.max_depth > 3")
    assert {r.params["max_depth"] for r in found} == {"4", "5"}
    found = project.runs.search(filter="name like 'run-%' and status = 'finished'")
    assert len(found) == 12


def test_paging_walks_every_run_once_in_order(project: Shipyard, runs: list[str]) -> None:
    seen: list[str] = []
    token = None
    while True:
        page = project.runs.search(order_by=["metrics.auc"], max_results=5, page_token=token)
        seen += [r.id for r in page]
        token = page.next_page_token
        if token is None:
            break
    assert len(seen) == 12 and len(set(seen)) == 12
    aucs = [project.runs.get(i).metrics["auc"].value for i in seen]
    assert aucs == sorted(aucs)


def test_search_results_become_a_dataframe(project: Shipyard, runs: list[str]) -> None:
    frame = project.runs.search("churn").to_pandas()
    assert len(frame) == 8
    assert {"run_id", "metrics.auc", "params.max_depth", "tags.team"} <= set(frame.columns)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"filter": "metrics.auc >> 0.9"}, "position"),
        ({"filter": "metrics.auc > 'high'"}, "is a number"),
        ({"filter": "start_time > 5"}, "ISO-8601"),
        ({"order_by": ["metrics.auc sideways"]}, "expected .asc."),
        ({"max_results": 0}, "max_results"),
        ({"page_token": "garbage"}, "page_token"),
    ],
)
def test_bad_searches_get_clear_errors(
    project: Shipyard, runs: list[str], kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        project.runs.search(**kwargs)  # type: ignore[arg-type]


def test_duration_like_and_numeric_params_agree_on_both_backends(project: Shipyard) -> None:
    with project.runs.start_run("x", name="Alpha", capture=False) as run:
        run.log_param("p", "v2")
    with project.runs.start_run("x", name="beta", capture=False) as run:
        run.log_param("p", "3")
    assert [r.name for r in project.runs.search(filter="params.p > 1")] == ["beta"]
    assert len(project.runs.search(filter="duration >= 0")) == 2
    assert len(project.runs.search(filter="duration < 0")) == 0
    assert [r.name for r in project.runs.search(filter="name like 'A%'")] == ["Alpha"]
    assert len(project.runs.search(filter="name like 'a%'")) == 0, "like is case-sensitive"
    assert len(project.runs.search(filter="name ilike 'a%'")) == 1
    with pytest.raises(InvalidArgumentError, match="is a number"):
        project.runs.search(filter="metrics.m like '1%'")


def test_a_page_holds_each_run_as_get_reads_it(project: Shipyard, runs: list[str]) -> None:
    with project.runs.start_run("churn", capture=True) as run:  # environment captured
        run.log_metrics({"nan": math.nan, "inf": math.inf, "neg": -math.inf})
        run.log_metric("auc", 0.1, step=3)
        run.log_metric("auc", 0.9, step=1)  # the latest is by step: 0.1 stays
        run.set_tag("team", "c")
    page = project.runs.search(order_by=["metrics.auc"])
    assert page[0].id == run.id
    assert len(page) == len(runs) + 1
    for found in page:
        expected = project.runs.get(found.id)
        assert found.to_dict() == expected.to_dict()
    first = page[0]
    assert first.environment is not None and first.metrics["auc"].value == 0.1
    assert math.isnan(first.metrics["nan"].value) and first.metrics["neg"].value == -math.inf


def test_pages_larger_than_a_batch_keep_order_and_details(
    project: Shipyard, runs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_search, "_BATCH", 5)
    page = project.runs.search(order_by=["metrics.auc desc"])
    assert len(page) == 12
    aucs = [r.metrics["auc"].value for r in page]
    assert aucs == sorted(aucs, reverse=True)
    assert all(set(r.params) == {"max_depth", "model"} and "team" in r.tags for r in page)


def test_a_run_with_thousands_of_metrics_does_not_make_a_page_scan_them(tmp_path: Path) -> None:
    # SQLite's plan, on its own project: with ``run_id IN (...)`` its planner, misled by the
    # average number of metrics a run (one run holds 3,000 here), scanned the whole table.
    with build(Settings.load(tmp_path, env={}, user="alice")) as project:
        for i in range(12):
            with project.runs.start_run("churn", capture=False) as run:
                run.log_metric("auc", i / 10)
        with project.runs.start_run("big", capture=False) as run:
            run.log_metrics({f"k{i}": 1.0 for i in range(3000)})
        project.metadata.refresh_statistics(max_age=0)
        page = [r.id for r in project.runs.search(filter="metrics.auc >= 0")]
        sql = run_search._IDS.format(values=",".join(["(?)"] * len(page))) + run_search._METRICS
        with project.metadata.read() as conn:
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", tuple(page)).all()
    steps = [str(row[-1]) for row in plan]
    assert len(page) == 12
    assert "SEARCH m USING INDEX sqlite_autoindex_metric_latest_1 (run_id=?)" in steps, steps
    assert not any(step.startswith(("SCAN m", "SCAN metric_latest")) for step in steps), steps


def test_a_search_asked_again_reads_fresh_rows_and_equal_numbers_stay_apart(
    project: Shipyard,
) -> None:
    for value in ("1", "1.0", "True"):
        with project.runs.start_run("memo", name=f"p-{value}", capture=False) as run:
            run.log_param("p", value)
    for spelling, name in (("1", "p-1"), ("1.0", "p-1.0"), ("true", "p-True"), ("1", "p-1")):
        found = project.runs.search("memo", filter=f"params.p = {spelling}")
        assert [r.name for r in found] == [name], spelling
    with project.runs.start_run("memo", name="later", capture=False) as run:
        run.log_param("p", "1")
    found = project.runs.search("memo", filter="params.p = 1")
    assert sorted(r.name for r in found) == ["later", "p-1"]


def test_found_runs_carry_their_times_as_aware_utc_datetimes(project: Shipyard) -> None:
    from datetime import UTC, datetime

    before = datetime.now(UTC)
    with project.runs.start_run("times", capture=False) as run:
        run.log_metric("auc", 0.5)
    after = datetime.now(UTC)
    (found,) = project.runs.search("times")
    assert found.start_time.utcoffset() is not None and found.start_time.utcoffset().seconds == 0
    assert before <= found.start_time <= found.end_time <= after
    frame = project.runs.search("times").to_arrow()
    assert str(frame.schema.field("start_time").type) == "timestamp[us, tz=UTC]"
    assert frame.column("start_time")[0].as_py() == found.start_time

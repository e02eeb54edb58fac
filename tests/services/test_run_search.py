from __future__ import annotations

import pytest

from shipyard.app import Shipyard
from shipyard.errors import InvalidArgumentError


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

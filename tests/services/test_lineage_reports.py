from __future__ import annotations

import re
from datetime import UTC, datetime

import pandas as pd
import pytest

from shipyard.app import Shipyard
from shipyard.domain.lineage import Edge, Node
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.services.flavors.python import ModelContext, PythonModel
from shipyard.services.lineage import LineageGraph
from shipyard.services.lineage_reports import render_lineage_html, resolve_lineage_root

WHEN = datetime(2025, 1, 2, 3, 4, tzinfo=UTC)


class Constant(PythonModel):
    def predict(self, context: ModelContext, model_input: object) -> object:
        return 1


_BOX = re.compile(r'<title>([a-z_]+) [^<]*</title><rect x="([\d.]+)"')


def _edge(source: Node, relation: str, target: Node) -> Edge:
    return Edge(source, target, relation, WHEN, "alice")


def _self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert "<svg" in page and page.count("<svg") == page.count("</svg>")
    assert "<script" not in page.lower()
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"\b(src|href)\s*=", page)


def test_an_empty_graph_draws_the_root_alone() -> None:
    page = render_lineage_html(LineageGraph(Node("model_version", "churn@1")))
    _self_contained(page)
    assert "<title>Lineage of model_version churn@1</title>" in page
    assert page.count("<rect") == 1
    assert "No lineage is recorded" in page
    assert "<table" not in page


def test_a_graph_of_three_kinds_draws_columns_in_flow_order() -> None:
    data, run, model = (
        Node("dataset_version", "cancer@2"),
        Node("run", "r" * 32),
        Node("model_version", "churn@3"),
    )
    graph = LineageGraph(
        model,
        upstream=(_edge(run, "produced", model), _edge(data, "consumed_by", run)),
    )
    page = render_lineage_html(graph)
    _self_contained(page)
    assert page.count("<rect") == 3
    assert page.count("marker-end=") == 2
    kinds = [m.group(1) for m in re.finditer(r'<text class="kind"[^>]*>([a-z_]+)</text>', page)]
    assert kinds == ["dataset_version", "run", "model_version"]
    xs = {m.group(1): float(m.group(2)) for m in re.finditer(_BOX, page)}
    assert xs["dataset_version"] < xs["run"] < xs["model_version"]
    assert "r" * 29 + "…" in page, "a long id is cut in its box"
    assert f"<title>run {'r' * 32}</title>" in page, "and whole in its tooltip"
    for relation in ("produced", "consumed_by"):
        assert f">{relation}</text>" in page and f"<td>{relation}</td>" in page
    assert 'stroke-width="2.5"' in page, "the root stands out"
    assert "2025-01-02 03:04" in page


def test_edges_against_the_flow_and_within_a_column_still_draw() -> None:
    model, deployment, monitor = (
        Node("model_version", "m@1"),
        Node("deployment", "d1"),
        Node("monitor_run", "mon1"),
    )
    data, derived = Node("dataset_version", "logs@1"), Node("dataset_version", "logs@2")
    graph = LineageGraph(
        model,
        downstream=(
            _edge(model, "deployed_as", deployment),
            _edge(deployment, "monitored_by", monitor),
            _edge(monitor, "created", data),
            _edge(data, "derived_from", derived),
            _edge(model, "deployed_as", deployment),  # a repeated edge draws once
        ),
    )
    page = render_lineage_html(graph)
    _self_contained(page)
    assert page.count("marker-end=") == 4
    assert page.count("<rect") == 5


def test_ids_with_markup_are_escaped_everywhere() -> None:
    evil = Node("deployment", "<script>alert('x')</script>")
    root = Node("model_version", 'a"b@1')
    page = render_lineage_html(LineageGraph(root, downstream=(_edge(root, "deployed_as", evil),)))
    _self_contained(page)
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "a&quot;b@1" in page and 'a"b@1' not in page


@pytest.fixture
def records(project: Shipyard) -> str:
    """A dataset and a model both called ``churn``, and a run; returns the run id."""
    project.datasets.add("churn", pd.DataFrame({"x": [1.0, 2.0]}))
    project.datasets.label("churn@1", "golden")
    with project.runs.start_run("e", capture=False) as run:
        run.log_model(Constant(), "churn")
        run.log_model(Constant(), "churn")
    return run.id


def test_resolve_prefers_a_model_and_numbers_aliases(project: Shipyard, records: str) -> None:
    services = {"registry": project.registry, "datasets": project.datasets, "runs": project.runs}
    assert resolve_lineage_root("churn@latest", **services) == Node("model_version", "churn@2")
    assert resolve_lineage_root("churn", "dataset_version", **services) == Node(
        "dataset_version", "churn@1"
    )
    assert resolve_lineage_root("churn@golden", **services) == Node("dataset_version", "churn@1")
    assert resolve_lineage_root(records, **services) == Node("run", records)
    assert resolve_lineage_root(records[-8:], "run", **services) == Node("run", records)
    assert resolve_lineage_root("dep-1", "deployment", **services) == Node("deployment", "dep-1")
    with pytest.raises(NotFoundError, match="no model version, dataset version or run"):
        resolve_lineage_root("nothing@3", **services)
    with pytest.raises(NotFoundError, match="versions 1 to 2"):
        resolve_lineage_root("churn@5", "model_version", **services)
    with pytest.raises(InvalidArgumentError, match="unknown lineage kind"):
        resolve_lineage_root("churn@1", "model", **services)


def test_an_id_of_another_kind_is_found_through_its_edges(project: Shipyard) -> None:
    with project.runs.start_run("e", capture=False) as run:
        run.log_model(Constant(), "churn")
    deployment = project.deployments.start(
        name="churn", version=1, alias=None, url="http://127.0.0.1:1", runtime="native"
    )
    services = {
        "registry": project.registry,
        "datasets": project.datasets,
        "runs": project.runs,
        "lineage": project.lineage,
    }

    root = resolve_lineage_root(deployment.id, **services)

    assert root == Node("deployment", deployment.id)
    graph = project.lineage.graph(root)
    assert Node("model_version", "churn@1") in {e.source for e in graph.upstream}
    with pytest.raises(NotFoundError, match="no model version, dataset version or run"):
        resolve_lineage_root("0" * 32, **services)

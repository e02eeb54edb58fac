from __future__ import annotations

import pytest

from shipyard.app import Shipyard
from shipyard.domain.lineage import Node
from shipyard.errors import InvalidArgumentError

DATA = Node("dataset_version", "customers@3")
RUN = Node("run", "r1")
MODEL = Node("model_version", "churn@7")
DEPLOY = Node("deployment", "d1")


def test_graph_walks_both_directions(project: Shipyard) -> None:
    with project.metadata.write() as conn:
        project.lineage.link(conn, DATA, "consumed_by", RUN, actor="alice")
        project.lineage.link(conn, RUN, "produced", MODEL, actor="alice")
        project.lineage.link(conn, MODEL, "deployed_as", DEPLOY, actor="alice")
    graph = project.lineage.graph(MODEL)
    assert {(e.source, e.target) for e in graph.upstream} == {(DATA, RUN), (RUN, MODEL)}
    assert [(e.source, e.target) for e in graph.downstream] == [(MODEL, DEPLOY)]
    assert graph.upstream[0].created_by == "alice"
    assert project.lineage.graph(DATA).upstream == ()
    assert len(project.lineage.graph(DATA).downstream) == 3
    assert graph.to_dict()["root"] == {"kind": "model_version", "id": "churn@7"}


def test_linking_twice_keeps_one_edge(project: Shipyard) -> None:
    for _ in range(2):
        with project.metadata.write() as conn:
            project.lineage.link(conn, DATA, "consumed_by", RUN, actor="alice")
    assert len(project.lineage.graph(RUN).upstream) == 1


@pytest.mark.parametrize(
    ("source", "relation", "match"),
    [(Node("table", "x"), "consumed_by", "unknown lineage kind"), (DATA, "ate", "relation")],
)
def test_unknown_kinds_and_relations_are_refused(
    project: Shipyard, source: Node, relation: str, match: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=match), project.metadata.write() as conn:
        project.lineage.link(conn, source, relation, RUN, actor="alice")
    assert project.lineage.graph(RUN).upstream == ()

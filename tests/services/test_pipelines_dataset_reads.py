"""Cached tasks that resolve a moving dataset reference themselves (``"wine@latest"`` as text).

The engine cannot tell such a string from any other, so it watches what the task resolves:
each ``name@latest`` / ``name@label`` is stored with the result and the content it gave,
and the result is reused only while every one still resolves to that content.
"""

from __future__ import annotations

import sys

import cloudpickle
import pyarrow as pa

import shipyard as sy
from shipyard.app import Shipyard
from shipyard.domain.ids import new_id
from shipyard.domain.pipelines import TASK_DATASET_READS, note_dataset_read
from shipyard.services.pipeline_caching import TaskResult, load_task_result, store_result

cloudpickle.register_pickle_by_value(sys.modules[__name__])

CALLS: dict[str, int] = {}
OPEN: list[Shipyard] = []  # the project a thread task reads through


def _statuses(project: Shipyard, run_id: str) -> dict[str, str]:
    return {t.key: t.status for t in project.pipelines.tasks(run_id)}


@sy.task(cache=True)
def rows_named(reference: str, label: str) -> int:
    CALLS[label] = CALLS.get(label, 0) + 1
    return int(OPEN[0].datasets.get(reference).to_arrow().num_rows)


@sy.task(cache=True, isolate=True)
def rows_named_in_a_process(root: str, metadata_uri: str, reference: str) -> int:
    with sy.connect(root, metadata_uri=metadata_uri, user="alice") as project:
        return int(project.datasets.get(reference).to_arrow().num_rows)


def test_a_task_reading_name_at_latest_runs_again_once_the_data_moved(
    project: Shipyard,
) -> None:
    OPEN[:] = [project]
    label = f"latest-{new_id()}"
    project.datasets.add("wine", pa.table({"x": [1, 2, 3]}))

    @sy.pipeline(name="wine-rows-by-name")
    def flow(reference: str = "wine@latest") -> int:
        return rows_named(reference, label)  # type: ignore[no-any-return]

    first = project.pipelines.run(flow, {})
    cached = project.pipelines.run(flow, {})
    assert first.result == cached.result == 3
    assert _statuses(project, cached.id) == {"rows_named-0": "cached"}
    assert CALLS[label] == 1

    project.datasets.add("wine", pa.table({"x": [1, 2, 3, 4]}))  # wine@2: new data
    newer = project.pipelines.run(flow, {})
    assert newer.result == 4  # not the stale 3
    assert _statuses(project, newer.id) == {"rows_named-0": "succeeded"}
    (log,) = [text for _, text in project.pipelines.logs(newer.id, "rows_named-0")]
    assert "cached result not used: dataset wine@latest now has other content" in log
    again = project.pipelines.run(flow, {})
    assert again.result == 4 and _statuses(project, again.id) == {"rows_named-0": "cached"}
    assert CALLS[label] == 2

    # a label that moves counts the same way; a pinned version never moves
    project.datasets.label("wine@1", "prod")
    assert project.pipelines.run(flow, {"reference": "wine@prod"}).result == 3
    project.datasets.label("wine@2", "prod")
    moved = project.pipelines.run(flow, {"reference": "wine@prod"})
    assert moved.result == 4 and _statuses(project, moved.id) == {"rows_named-0": "succeeded"}
    assert project.pipelines.run(flow, {"reference": "wine@1"}).result == 3
    project.datasets.add("wine", pa.table({"x": [9]}))
    pinned = project.pipelines.run(flow, {"reference": "wine@1"})
    assert pinned.result == 3 and _statuses(project, pinned.id) == {"rows_named-0": "cached"}
    assert CALLS[label] == 5


def test_the_reads_of_a_task_in_its_own_process_come_back_with_its_outcome(
    project: Shipyard,
) -> None:
    project.datasets.add("grapes", pa.table({"x": [1, 2]}))
    root, uri = str(project.settings.root), project.settings.metadata_uri

    @sy.pipeline(name="grape-rows-in-a-process")
    def flow() -> int:
        return rows_named_in_a_process(root, uri, "grapes@latest")  # type: ignore[no-any-return]

    assert project.pipelines.run(flow, {}).result == 2
    cached = project.pipelines.run(flow, {})
    assert _statuses(project, cached.id) == {"rows_named_in_a_process-0": "cached"}
    project.datasets.add("grapes", pa.table({"x": [1, 2, 3]}))
    newer = project.pipelines.run(flow, {})
    assert newer.result == 3
    assert _statuses(project, newer.id) == {"rows_named_in_a_process-0": "succeeded"}


def test_a_result_stores_its_reads_and_an_older_plain_result_still_loads(
    project: Shipyard,
) -> None:
    with_reads = store_result(project.content, "t", {"a": 1}, [("wine@latest", "blake3:00")])
    assert load_task_result(project.content, with_reads) == TaskResult(
        {"a": 1}, (("wine@latest", "blake3:00"),)
    )
    plain = store_result(project.content, "t", [1, 2])  # as every result was stored before
    assert load_task_result(project.content, plain) == TaskResult([1, 2], ())


def test_only_moving_references_are_noted_and_only_inside_a_task() -> None:
    note_dataset_read("wine@latest", False, "blake3:aa")  # outside a task: nothing to do
    reads: list[tuple[str, str]] = []
    token = TASK_DATASET_READS.set(reads)
    try:
        note_dataset_read("wine@latest", False, "blake3:aa")
        note_dataset_read("wine@latest", False, "blake3:aa")  # once
        note_dataset_read("wine@3", True, "blake3:bb")  # pinned: never moves
    finally:
        TASK_DATASET_READS.reset(token)
    assert reads == [("wine@latest", "blake3:aa")]


@sy.task(cache=True)
def rows_or_none(reference: str, label: str) -> int:
    from shipyard.errors import NotFoundError

    CALLS[label] = CALLS.get(label, 0) + 1
    try:
        return int(OPEN[0].datasets.get(reference).to_arrow().num_rows)
    except NotFoundError:
        return -1


def test_a_reference_that_no_longer_resolves_runs_the_task_again(project: Shipyard) -> None:
    from sqlalchemy import delete

    from shipyard.stores.metadata.schema import dataset_labels

    OPEN[:] = [project]
    label = f"gone-{new_id()}"
    project.datasets.add("grapes", pa.table({"x": [1, 2]}))
    project.datasets.label("grapes@1", "golden")

    @sy.pipeline(name="grapes-rows")
    def flow() -> int:
        return rows_or_none("grapes@golden", label)  # type: ignore[no-any-return]

    assert project.pipelines.run(flow, {}).result == 2
    with project.metadata.write() as conn:  # the label is taken away behind the cache's back
        conn.execute(delete(dataset_labels).where(dataset_labels.c.label == "golden"))
    gone = project.pipelines.run(flow, {})
    assert gone.result == -1 and _statuses(project, gone.id) == {"rows_or_none-0": "succeeded"}
    (log,) = [text for _, text in project.pipelines.logs(gone.id, "rows_or_none-0")]
    assert "cached result not used: dataset grapes@golden no longer resolves" in log
    assert CALLS[label] == 2

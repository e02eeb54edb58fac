"""Pipelines: cache keys of datasets and code, retry backoff and jitter, lineage of tasks."""

from __future__ import annotations

import random
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import cloudpickle
import pyarrow as pa
import pytest
from sqlalchemy import select

import shipyard as sy
from shipyard.app import Shipyard
from shipyard.domain.datasets import DatasetVersion
from shipyard.domain.ids import new_id
from shipyard.services import pipeline_runner
from shipyard.services.datasets import DatasetHandle
from shipyard.services.flavors.python import ModelContext, PythonModel
from shipyard.stores.metadata.schema import lineage_edges

cloudpickle.register_pickle_by_value(sys.modules[__name__])

CALLS: dict[str, int] = {}
STARTS: dict[str, list[float]] = {}


def _statuses(project: Shipyard, run_id: str) -> dict[str, str]:
    return {t.key: t.status for t in project.pipelines.tasks(run_id)}


# -- cache keys of dataset inputs ----------------------------------------------------------


@sy.task(cache=True)
def rows_of(data: DatasetHandle | DatasetVersion, label: str) -> int:
    CALLS[label] = CALLS.get(label, 0) + 1
    if isinstance(data, DatasetVersion):
        return data.rows or 0
    return int(data.to_arrow().num_rows)


def test_a_cached_task_given_a_dataset_handle_reruns_after_a_new_version(
    project: Shipyard,
) -> None:
    label = f"handle-{new_id()}"
    project.datasets.add("wine", pa.table({"x": [1, 2, 3]}))

    @sy.pipeline(name="wine-rows")
    def flow(dataset: str = "wine@latest") -> int:
        return rows_of(project.datasets.get(dataset), label)  # type: ignore[no-any-return]

    first = project.pipelines.run(flow, {})
    unchanged = project.pipelines.run(flow, {})
    assert first.result == unchanged.result == 3
    assert _statuses(project, unchanged.id) == {"rows_of-0": "cached"}
    assert CALLS[label] == 1

    project.datasets.add("wine", pa.table({"x": [1, 2, 3, 4]}))  # wine@2, new data
    newer = project.pipelines.run(flow, {})
    again = project.pipelines.run(flow, {})
    assert newer.result == again.result == 4  # not the stale 3 of wine@1
    assert _statuses(project, newer.id) == {"rows_of-0": "succeeded"}
    assert _statuses(project, again.id) == {"rows_of-0": "cached"}
    assert CALLS[label] == 2
    # A pinned reference to the old version keys by the old content: wine@1's result.
    pinned = project.pipelines.run(flow, {"dataset": "wine@1"})
    assert pinned.result == 3 and _statuses(project, pinned.id) == {"rows_of-0": "cached"}
    assert CALLS[label] == 2


def test_a_dataset_version_input_counts_by_its_content_not_its_number(
    project: Shipyard,
) -> None:
    label = f"version-{new_id()}"
    project.datasets.add("grapes", pa.table({"x": [1, 2]}))

    @sy.pipeline(name="grape-rows")
    def flow(dataset: str = "grapes@latest") -> int:
        return rows_of(project.datasets.resolve(dataset), label)  # type: ignore[no-any-return]

    assert project.pipelines.run(flow, {}).result == 2
    project.datasets.add("grapes", pa.table({"x": [1, 2, 3]}))  # grapes@2: new data
    assert project.pipelines.run(flow, {}).result == 3
    assert CALLS[label] == 2
    third = project.datasets.add("grapes", pa.table({"x": [1, 2]}))  # grapes@3 = grapes@1
    assert third.version.version == 3
    same_data = project.pipelines.run(flow, {})
    assert same_data.result == 2 and _statuses(project, same_data.id) == {"rows_of-0": "cached"}
    assert CALLS[label] == 2


# -- cache keys of code --------------------------------------------------------------------

CODED = """
import pathlib
import shipyard as sy

HERE = pathlib.Path(__file__).parent

@sy.task(cache=True)
def compute(x: int) -> int:
    with (HERE / "calls").open("a") as out:
        out.write("compute\\n")
    return {body}

@sy.pipeline
def flow(x: int = 1) -> int:
    return compute(x)
"""


def test_changing_a_tasks_code_invalidates_its_cache(project: Shipyard, tmp_path: Path) -> None:
    flow = tmp_path / "flow.py"
    calls = tmp_path / "calls"
    flow.write_text(textwrap.dedent(CODED.format(body="x + 1")))
    first = project.pipelines.run(f"{flow}:flow", {"x": 1})
    cached = project.pipelines.run(f"{flow}:flow", {"x": 1})
    assert first.result == cached.result == 2
    assert _statuses(project, cached.id) == {"compute-0": "cached"}
    assert calls.read_text().count("compute") == 1

    flow.write_text(textwrap.dedent(CODED.format(body="x * 100 + 1")))  # the same inputs
    edited = project.pipelines.run(f"{flow}:flow", {"x": 1})
    assert edited.result == 101
    assert _statuses(project, edited.id) == {"compute-0": "succeeded"}
    assert calls.read_text().count("compute") == 2
    tasks = {t.key: t for t in project.pipelines.tasks(first.id)}
    assert project.pipelines.tasks(edited.id)[0].cache_key != tasks["compute-0"].cache_key
    again = project.pipelines.run(f"{flow}:flow", {"x": 1})
    assert again.result == 101 and _statuses(project, again.id) == {"compute-0": "cached"}


# -- retries: exponential backoff and jitter -----------------------------------------------


def _fail(label: str) -> None:
    STARTS.setdefault(label, []).append(time.time())
    raise RuntimeError(f"{label} fails every time")


@sy.task(retries=2, retry_backoff=2.0)  # waits 2 s then 4 s, each scaled by 1 +/- 0.1
def backing_off(label: str) -> None:
    _fail(label)


@sy.task(retries=3, retry_backoff=0.2, retry_jitter=0.5)
def jittery(label: str) -> None:
    _fail(label)


@pytest.mark.parametrize("metadata_uri", ["sqlite"], indirect=True)
def test_retry_waits_grow_exponentially_from_the_backoff(project: Shipyard) -> None:
    label = f"backoff-{new_id()}"

    @sy.pipeline(name="backing-off")
    def flow() -> None:
        backing_off(label)

    run = project.pipelines.run(flow, {})
    assert run.status == "failed"
    starts = STARTS[label]
    assert len(starts) == 3
    # Lower bounds only: the second wait's least (4 s - 10 %) is above the first's most
    # (2 s + 10 %), so waits that meet them grew.
    assert starts[1] - starts[0] >= 2.0 * 0.9
    assert starts[2] - starts[1] >= 4.0 * 0.9
    (task,) = project.pipelines.tasks(run.id)
    assert task.status == "failed" and task.attempt == 3
    assert task.started_at is not None  # the recorded start of the last attempt
    assert task.started_at.timestamp() - starts[0] >= (2.0 + 4.0) * 0.9
    assert "fails every time" in (task.error or "")


class _Draws(random.Random):
    """A seeded generator that keeps what ``uniform`` was asked and gave."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.draws: list[tuple[float, float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        value = super().uniform(a, b)
        self.draws.append((a, b, value))
        return value


@pytest.mark.parametrize("metadata_uri", ["sqlite"], indirect=True)
def test_retry_jitter_scales_each_wait_within_its_range(
    project: Shipyard, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The engine draws its jitter from the `random` module; a seeded generator in its place
    # shows the draws, the engine's waits stay real.
    draws = _Draws(7)
    monkeypatch.setattr(pipeline_runner, "random", draws)
    label = f"jitter-{new_id()}"

    @sy.pipeline(name="jittery")
    def flow() -> None:
        jittery(label)

    run = project.pipelines.run(flow, {})
    assert run.status == "failed"
    starts = STARTS[label]
    assert len(starts) == 4 and len(draws.draws) == 3
    assert all((a, b) == (-0.5, 0.5) and -0.5 <= d <= 0.5 for a, b, d in draws.draws)
    factors = [1 + d for _, _, d in draws.draws]
    assert len(set(factors)) == 3  # each wait has its own jitter
    for n, factor in enumerate(factors):
        assert starts[n + 1] - starts[n] >= 0.2 * 2**n * factor - 0.005


# -- lineage of records made inside tasks --------------------------------------------------


class Constant(PythonModel):
    def predict(self, context: ModelContext, model_input: Any) -> Any:
        return [1.0 for _ in model_input]


@sy.task
def make_records(project: Shipyard) -> tuple[str, str]:
    data = project.datasets.add("made", pa.table({"x": [1, 2, 3]}))
    model = project.models.log_model(Constant(), "made-model", onnx=False)
    return data.version.ref, model.ref


def test_a_dataset_and_a_model_made_in_a_task_link_to_the_pipeline_run(
    project: Shipyard,
) -> None:
    @sy.pipeline(name="makes")
    def flow() -> Any:
        return make_records(project)

    run = project.pipelines.run(flow, {})
    assert run.status == "succeeded", run.error
    assert run.result == ("made@1", "made-model@1")
    with project.metadata.read() as conn:
        edges = conn.execute(select(lineage_edges)).mappings().all()
    from_run = {
        (e["from_id"], e["relation"], e["to_kind"], e["to_id"])
        for e in edges
        if e["from_kind"] == "pipeline_run"
    }
    assert from_run == {
        (run.id, "created", "dataset_version", "made@1"),
        (run.id, "created", "model_version", "made-model@1"),
    }

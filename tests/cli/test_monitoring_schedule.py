"""Scheduled monitoring through the real scheduler: ``shipyard.cli.monitoring_flow:monitor``
as a schedule's target, one ``shipyard scheduler --once`` tick, and the monitor run it stores."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from typer.testing import Result

from shipyard.app import Shipyard, build
from shipyard.domain.lineage import Node
from shipyard.settings import Settings

Invoke = Callable[..., Result]

_LOGGED = 50  # predictions in the prediction log, one request each


def ok(result: Result) -> object:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def monitored(cli: Invoke, tmp_path: Path, metadata_uri: str) -> Iterator[Shipyard]:
    """The CLI's project (the working directory) on each metadata back end.

    wine-data@1 -consumed_by-> a run -produced-> wine@1, and logged predictions of wine@1.
    """
    (tmp_path / "shipyard.toml").write_text(f'[store]\nmetadata = "{metadata_uri}"\n')
    data = load_wine(as_frame=True)
    X, y = data.data, data.target
    with build(Settings.load(tmp_path, env={})) as project:
        dataset = project.datasets.add("wine-data", X.assign(target=y)).version
        model = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, y)
        with project.runs.start_run("wine", capture=False) as run:
            run.use_dataset(dataset.ref)
            run.log_metric("accuracy", 0.97)
            run.log_model(model, "wine", input_example=X[:5], onnx=False)
        rows = X.sample(_LOGGED, random_state=1)
        with project.predictions.log(deployment_id="dep-1", name="wine") as log:
            for i, (record, prediction) in enumerate(
                zip(rows.to_dict(orient="records"), model.predict(rows), strict=True)
            ):
                log.record(
                    request_id=f"r-{i}",
                    at=time.time(),
                    version=1,
                    inputs=[record],
                    outputs=[int(prediction)],
                    latency=0.004,
                )
        project.predictions.feedback("wine", {"r-0": int(y[rows.index[0]])})
        yield project


def test_the_scheduler_runs_the_monitor_flow_and_stores_a_monitor_run(
    cli: Invoke, monitored: Shipyard
) -> None:
    project = monitored
    added = ok(
        cli(
            "schedules", "add", "wine-monitor", "shipyard.cli.monitoring_flow:monitor",
            "--every", "1s", "--param", "model=wine@1", "--param", "window=1h", "--json",
        )
    )  # fmt: skip
    assert isinstance(added, dict)
    assert added["params"] == {"model": "wine@1", "window": "1h"}
    assert project.monitoring.history("wine") == []  # nothing ran yet
    time.sleep(1.1)  # the first run is due one interval after the schedule was added

    launched = ok(cli("scheduler", "--once", "--json"))

    assert isinstance(launched, dict)
    (run_id,) = launched["launched"]
    pipeline_run = project.pipelines.get(run_id)
    assert pipeline_run.status == "succeeded", pipeline_run.error
    assert (pipeline_run.pipeline, pipeline_run.schedule) == ("monitor", "wine-monitor")
    assert pipeline_run.params == {"model": "wine@1", "window": "1h", "project": ""}
    (monitor_run,) = project.monitoring.history("wine")
    assert (monitor_run.name, monitor_run.version) == ("wine", 1)
    assert monitor_run.reference == "wine-data@1"  # the training data, through lineage
    assert monitor_run.current == "predictions"
    assert monitor_run.rows == _LOGGED
    assert monitor_run.status == "ok"
    assert monitor_run.metrics["labelled_rows"] == 1
    assert monitor_run.metrics["baseline_accuracy"] == 0.97
    # the pipeline run's result is the stored monitor run
    result = project.pipelines.result(run_id)
    assert result["id"] == monitor_run.id and result["status"] == "ok"
    # lineage links the monitor run to wine@1 (pipeline runs link only the runs, dataset
    # and model versions made in them: their result above is what names the monitor run)
    watched = project.lineage.graph(Node("monitor_run", monitor_run.id), depth=1).upstream
    assert ("model_version", "wine@1") in {(e.source.kind, e.source.id) for e in watched}
    shown = ok(cli("schedules", "show", "wine-monitor", "--json"))
    assert shown["last_run_id"] == run_id  # type: ignore[index]
    assert len(project.monitoring.history("wine")) == 1


def test_a_scheduler_started_elsewhere_monitors_the_project_it_was_given(
    cli: Invoke, monitored: Shipyard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The task opens `shipyard.connect()`'s project: with -C, the scheduler's, wherever the
    # working directory is (the command points SHIPYARD_PROJECT at it while it runs).
    root = str(monitored.settings.root)
    ok(
        cli(
            "schedules", "add", "wine-monitor", "shipyard.cli.monitoring_flow:monitor",
            "--every", "1s", "--param", "model=wine@1", "--json",
        )
    )  # fmt: skip
    before = os.environ.get("SHIPYARD_PROJECT")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    time.sleep(1.1)

    launched = ok(cli("-C", root, "scheduler", "--once", "--json"))

    (run_id,) = launched["launched"]  # type: ignore[index]
    pipeline_run = monitored.pipelines.get(run_id)
    assert pipeline_run.status == "succeeded", pipeline_run.error
    (monitor_run,) = monitored.monitoring.history("wine")
    assert monitor_run.rows == _LOGGED and monitor_run.status == "ok"
    assert list(elsewhere.iterdir()) == []  # no project was opened in the working directory
    assert os.environ.get("SHIPYARD_PROJECT") == before  # put back when the command ended

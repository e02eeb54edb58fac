from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from shipyard.app import Shipyard
from shipyard.domain.lineage import Node
from shipyard.errors import ConflictError, InvalidArgumentError, NotFoundError


def test_a_run_records_params_metrics_tags_and_ends_finished(project: Shipyard) -> None:
    with project.runs.start_run("churn", name="baseline", tags={"team": "growth"}) as run:
        run.log_params({"max_depth": 5, "lr": 0.1, "layers": [64, 32]})
        for step in range(10):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_metrics({"auc": 0.91, "f1": 0.8})
        run.set_tag("stage", "dev")
    stored = project.runs.get(run.id)
    assert stored.status == "finished" and stored.end_time is not None
    assert stored.experiment == "churn" and stored.name == "baseline"
    assert stored.params == {"max_depth": "5", "lr": "0.1", "layers": "[64, 32]"}
    assert stored.tags == {"team": "growth", "stage": "dev"}
    assert stored.metrics["loss"].value == pytest.approx(0.1)
    assert stored.metrics["loss"].step == 9 and stored.metrics["loss"].count == 10
    assert stored.metrics["loss"].min == pytest.approx(0.1)
    assert stored.metrics["loss"].max == pytest.approx(1.0)
    assert stored.metrics["auc"].value == pytest.approx(0.91)
    assert stored.user == "alice"
    assert stored.environment is not None and "python" in stored.environment
    assert stored.resources is not None and stored.resources["wall_seconds"] >= 0


def test_nan_and_infinity_are_kept(project: Shipyard) -> None:
    with project.runs.start_run("e", capture=False) as run:
        run.log_metric("x", 1.0)
        run.log_metric("x", math.inf)
        run.log_metric("x", math.nan)
        run.log_metric("y", -math.inf)
    history = project.runs.metrics.history(run.id, "x")
    assert history.values[0] == 1.0 and math.isinf(history.values[1])
    assert math.isnan(history.values[2])
    assert list(history.steps) == [0, 1, 2]
    summary = project.runs.get(run.id).metrics
    assert math.isnan(summary["x"].value)
    assert summary["y"].value == -math.inf


def test_a_long_history_round_trips_across_chunks(project: Shipyard) -> None:
    with project.runs.start_run("e", capture=False) as run:
        values = np.random.default_rng(0).normal(size=20_000)
        for i, value in enumerate(values):
            run.log_metric("v", float(value), step=i)
            if i == 5000:
                run.flush()  # a partial chunk is then extended, not duplicated
    history = project.runs.metrics.history(run.id, "v")
    assert len(history) == 20_000
    np.testing.assert_array_equal(history.values, values)
    np.testing.assert_array_equal(history.steps, np.arange(20_000))


def test_the_block_raising_marks_the_run_failed(project: Shipyard) -> None:
    with pytest.raises(RuntimeError), project.runs.start_run("e", capture=False) as run:
        run.log_metric("m", 1.0)
        raise RuntimeError("training blew up")
    stored = project.runs.get(run.id)
    assert stored.status == "failed"
    assert stored.metrics["m"].value == 1.0, "what was logged before the error is kept"


def test_logging_after_the_run_ended_is_refused(project: Shipyard) -> None:
    with project.runs.start_run("e", capture=False) as run:
        run.log_param("a", 1)
    for call in (
        lambda: run.log_param("b", 2),
        lambda: run.log_metric("m", 1.0),
        lambda: run.set_tag("t", "x"),
    ):
        with pytest.raises(ConflictError, match="has ended"):
            call()
    assert project.runs.get(run.id).params == {"a": "1"}


def test_a_param_logged_again_with_another_value_is_refused(project: Shipyard) -> None:
    with project.runs.start_run("e", capture=False) as run:
        run.log_param("depth", 5)
        run.log_param("depth", 5)  # the same value again is fine
        with pytest.raises(ConflictError, match="cannot change"):
            run.log_params({"depth": 6, "other": 1})
    assert project.runs.get(run.id).params == {"depth": "5"}, "nothing of the batch is kept"


@pytest.mark.parametrize(
    ("key", "value"), [("", 1.0), ("x" * 300, 1.0), ("m", "not a number"), ("m", None)]
)
def test_bad_metrics_are_refused(project: Shipyard, key: str, value: object) -> None:
    with project.runs.start_run("e", capture=False) as run, pytest.raises(InvalidArgumentError):
        run.log_metric(key, value)  # type: ignore[arg-type]


def test_nested_runs_record_their_parent(project: Shipyard) -> None:
    with (
        project.runs.start_run("e", capture=False) as parent,
        project.runs.start_run("e", capture=False) as child,
    ):
        pass
    assert project.runs.get(child.id).parent_id == parent.id
    assert project.runs.get(parent.id).parent_id is None


def test_artifacts_files_folders_dicts_and_tables(project: Shipyard, tmp_path: Path) -> None:
    import pandas as pd

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(os.urandom(5000))
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("hello")
    with project.runs.start_run("e", capture=False) as run:
        run.log_artifact(tmp_path / "notes.txt")
        run.log_artifacts(tmp_path / "model", "model")
        run.log_dict({"a": 1}, "meta/info.json")
        run.log_table(pd.DataFrame({"x": [1, 2]}), "tables/preds.parquet")
        with pytest.raises(InvalidArgumentError):
            run.log_dict({}, "../escape.json")
        with pytest.raises(NotFoundError):
            run.log_artifact(tmp_path / "missing.txt")
    paths = [a.path for a in project.runs.artifacts(run.id)]
    assert paths == [
        "meta/info.json",
        "model/config.json",
        "model/weights.bin",
        "notes.txt",
        "tables/preds.parquet",
    ]
    assert project.runs.read_artifact(run.id, "notes.txt") == b"hello"
    out = tmp_path / "out"
    project.runs.download_artifacts(run.id, out, "model")
    assert (out / "model" / "weights.bin").read_bytes() == (
        tmp_path / "model" / "weights.bin"
    ).read_bytes()
    assert project.maintenance.fsck().ok


def test_use_dataset_links_the_dataset_version_to_the_run(project: Shipyard) -> None:
    import pyarrow as pa

    version = project.datasets.add("d", pa.table({"a": [1, 2, 3]})).version
    with project.runs.start_run("e", capture=False) as run:
        run.use_dataset(project.datasets.get(version.ref))
    graph = project.lineage.graph(Node("run", run.id))
    assert [(e.source.id, e.relation) for e in graph.upstream] == [("d@1", "consumed_by")]


def test_a_run_whose_process_died_is_marked_killed_on_read(project: Shipyard) -> None:
    script = (
        "import sys\n"
        "from shipyard.settings import Settings\n"
        "from shipyard.app import build\n"
        f"s = Settings.load({str(project.settings.root)!r}, env={{}}, "
        f"metadata_uri={project.settings.metadata_uri!r})\n"
        "p = build(s)\n"
        "run = p.runs.start_run('e', capture=False)\n"
        "run.log_metric('m', 1.0); run.flush()\n"
        "print(run.id, flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        assert project.runs.get(run_id).status == "running"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    stored = project.runs.get(run_id)
    assert stored.status == "killed"
    assert stored.metrics["m"].value == 1.0


def test_metrics_reach_the_store_within_the_flush_interval(project: Shipyard) -> None:
    with project.runs.start_run("e", capture=False) as run:
        run.log_metric("m", 3.0)
        deadline = time.monotonic() + 5
        while "m" not in project.runs.get(run.id).metrics:
            assert time.monotonic() < deadline, "the background flush never came"
            time.sleep(0.05)


def test_a_failed_flush_keeps_the_points_for_the_next_one(
    project: Shipyard, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.errors import StoreUnavailableError

    with project.runs.start_run("e", capture=False) as run:
        run.log_metric("m", 1.0)
        real = project.runs._write_metrics
        monkeypatch.setattr(
            project.runs,
            "_write_metrics",
            lambda *a, **k: (_ for _ in ()).throw(StoreUnavailableError("db", "locked")),
        )
        with pytest.raises(StoreUnavailableError):
            run.flush()
        run.log_metric("m", 2.0)
        monkeypatch.setattr(project.runs, "_write_metrics", real)
    history = project.runs.metrics.history(run.id, "m")
    assert list(history.values) == [1.0, 2.0]


def test_empty_tag_batches_are_fine_and_tags_on_ended_runs_are_refused(project: Shipyard) -> None:
    with project.runs.start_run("e", capture=False) as run:
        run.set_tags({})
        assert project.runs.active_run() is run
    assert project.runs.active_run() is None
    with pytest.raises(ConflictError):
        project.runs._write_tags(run.id, {"late": "x"})
    assert project.runs.get(run.id).tags == {}

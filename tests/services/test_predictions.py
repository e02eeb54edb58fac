from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sklearn.linear_model import Ridge
from sqlalchemy import func, select

from shipyard.app import Shipyard
from shipyard.errors import (
    CorruptBlobError,
    InvalidArgumentError,
    NotFoundError,
    SourceError,
)
from shipyard.services.predictions import PredictionLog
from shipyard.settings import Settings
from shipyard.stores.metadata.schema import prediction_batches, prediction_feedback

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def churn(project: Shipyard) -> str:
    """The model ``churn`` registered, and a running deployment of it; returns its id."""
    X = pa.table({"x": [0.0, 1.0, 2.0]}).to_pandas()
    project.models.log_model(Ridge().fit(X, [0.0, 1.0, 2.0]), "churn", input_example=X[:1])
    started = project.deployments.start(
        name="churn", version=1, alias=None, url="http://127.0.0.1:1", runtime="native"
    )
    return started.id


def _log(project: Shipyard, deployment_id: str, **options: Any) -> PredictionLog:
    options.setdefault("max_delay", 60.0)
    return project.predictions.log(deployment_id=deployment_id, name="churn", **options)


def _at(minutes: float) -> float:
    return (T0 + timedelta(minutes=minutes)).timestamp()


def _batches(project: Shipyard) -> list[Any]:
    with project.metadata.read() as conn:
        return list(conn.execute(select(prediction_batches).order_by(prediction_batches.c.id)))


def _wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_logged_rows_read_back_typed_one_row_per_input_row(project: Shipyard, churn: str) -> None:
    with _log(project, churn) as log:
        log.record(
            request_id="r1",
            at=_at(0),
            version=1,
            inputs=[{"x": 1.5, "city": "Oslo"}, {"x": 2.5}],
            outputs=[1.0, 2.0],
            latency=0.004,
        )
        log.record(
            request_id="r2",
            at=_at(1),
            version=1,
            inputs=[{"x": 3.0, "city": "Rome", "prediction": 7}],
            outputs=[{"prediction": 1, "probabilities": {"no": 0.25, "yes": 0.75}}],
            latency=0.002,
        )
    logged = project.predictions.read("churn")
    rows = logged.to_pylist()
    assert [(r["request_id"], r["row"]) for r in rows] == [("r1", 0), ("r1", 1), ("r2", 0)]
    assert [r["city"] for r in rows] == ["Oslo", None, "Rome"]
    assert rows[0]["at"] == T0
    assert rows[0]["latency_ms"] == pytest.approx(4.0)
    assert rows[0]["deployment_id"] == churn
    assert rows[2]["input_prediction"] == 7  # an input never hides shipyard's columns
    assert rows[2]["probability_yes"] == 0.75
    assert rows[0]["probability_yes"] is None
    assert logged.schema.field("x").type == pa.float64()
    assert logged.schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert logged.column("label").null_count == 3
    assert log.counters() == {
        "queued": 0,
        "written": 3,
        "dropped": 0,
        "sampled_out": 0,
        "batches": 1,
    }
    assert len(_batches(project)) == 1


def test_class_probabilities_are_stored_per_class_index(project: Shipyard, churn: str) -> None:
    with _log(project, churn) as log:
        log.record(
            request_id="r",
            at=_at(0),
            version=1,
            inputs=[{"x": 1}, {"x": 2}],
            outputs=["no", "yes"],
            latency=0,
            probabilities=[[0.9, 0.1], [0.2, 0.8]],
        )
        with pytest.raises(InvalidArgumentError, match="1 probability rows"):
            log.record(
                request_id="s",
                at=_at(0),
                version=1,
                inputs=[{"x": 1}, {"x": 2}],
                outputs=["no", "yes"],
                latency=0,
                probabilities=[[0.9, 0.1]],
            )
    rows = project.predictions.read("churn").to_pylist()
    assert [(r["prediction"], r["probability_0"], r["probability_1"]) for r in rows] == [
        ("no", 0.9, 0.1),
        ("yes", 0.2, 0.8),
    ]


def test_batches_are_cut_at_max_rows_and_after_max_delay(project: Shipyard, churn: str) -> None:
    log = _log(project, churn, max_rows=10, max_delay=0.3)
    try:
        for i in range(25):
            log.record(
                request_id=f"r{i}", at=_at(i), version=1, inputs=[{"x": i}], outputs=[i], latency=0
            )
        _wait_for(lambda: log.written == 25)
        assert [b.rows for b in _batches(project)] == [10, 10, 5]
        batches = _batches(project)
        assert batches[0].first_at == T0
        assert batches[0].last_at == T0 + timedelta(minutes=9)
    finally:
        log.close()


def test_batches_with_different_inputs_read_as_one_table(project: Shipyard, churn: str) -> None:
    with _log(project, churn) as log:
        log.record(request_id="a", at=_at(0), version=1, inputs=[{"x": 1}], outputs=[1], latency=0)
        log.flush()
        log.record(
            request_id="b", at=_at(1), version=1, inputs=[{"y": "new"}], outputs=[2], latency=0
        )
        log.flush()
        log.record(
            request_id="c", at=_at(2), version=1, inputs=[{"x": "text"}], outputs=[3], latency=0
        )
    assert len(_batches(project)) == 3
    rows = project.predictions.read("churn").to_pylist()
    assert [(r["request_id"], r["x"], r["y"]) for r in rows] == [
        ("a", "1", None),
        ("b", None, "new"),
        ("c", "text", None),
    ]


def test_sampling_keeps_the_same_requests_every_time(project: Shipyard, churn: str) -> None:
    kept = []
    for _ in range(2):
        with _log(project, churn, sample_rate=0.3) as log:
            for i in range(1000):
                log.record(
                    request_id=f"req-{i}", at=_at(0), version=1, inputs=[{}], outputs=[0], latency=0
                )
        kept.append(log.written)
        assert log.counters()["sampled_out"] == 1000 - log.written
    assert kept[0] == kept[1]
    assert 200 < kept[0] < 400
    ids = project.predictions.read("churn").column("request_id").to_pylist()
    assert len(set(ids)) == kept[0]


def test_a_full_queue_drops_and_counts_without_blocking(project: Shipyard, churn: str) -> None:
    with _log(project, churn, max_rows=100, max_queued_rows=100) as log:
        started = time.perf_counter()
        for i in range(150):
            log.record(
                request_id=f"r{i}", at=_at(0), version=1, inputs=[{"x": i}], outputs=[i], latency=0
            )
        assert time.perf_counter() - started < 0.5
        _wait_for(lambda: log.written == 100)
    assert (log.written, log.dropped, log.queued) == (100, 50, 0)


def test_a_burst_of_20000_records_queues_every_one(project: Shipyard, churn: str) -> None:
    # What a call costs is printed, not asserted: timings belong to the benchmarks
    # (bench/serving runs with and without the prediction log), and a loaded machine (two
    # suites at once) made 2-4 µs into 150 µs.
    calls = 20_000
    inputs = {n: [{f"f{c}": float(c) for c in range(8)} for _ in range(n)] for n in (1, 10)}
    with _log(project, churn, max_rows=5000, max_queued_rows=1_000_000) as log:
        for n, rows in inputs.items():
            outputs = [0.5] * n
            started = time.perf_counter()
            for i in range(calls):
                log.record(
                    request_id=f"{n}-{i}",
                    at=1.0e9,
                    version=1,
                    inputs=rows,
                    outputs=outputs,
                    latency=0.001,
                )
            per_call = (time.perf_counter() - started) / calls * 1e6
            print(f"record() with {n} row(s): {per_call:.2f} µs per call")
    assert log.dropped == 0


def test_record_refuses_a_row_count_mismatch(project: Shipyard, churn: str) -> None:
    with _log(project, churn) as log, pytest.raises(InvalidArgumentError, match="2 input rows"):
        log.record(request_id="r", at=0, version=1, inputs=[{}, {}], outputs=[1], latency=0)


def test_reads_keep_the_time_window_and_the_deployment(project: Shipyard, churn: str) -> None:
    with _log(project, churn, max_rows=10) as log:
        for minute in range(60):
            log.record(
                request_id=f"a{minute}",
                at=_at(minute),
                version=1,
                inputs=[{"x": minute}],
                outputs=[0],
                latency=0,
            )
    with _log(project, "other-deployment") as other:
        other.record(request_id="b", at=_at(30), version=1, inputs=[{}], outputs=[0], latency=0)
    window = project.predictions.read(
        "churn", since=T0 + timedelta(minutes=15), until=T0 + timedelta(minutes=25)
    )
    assert window.column("x").to_pylist() == list(range(15, 25))
    naive = project.predictions.read("churn", since=datetime(2026, 11, 1, 12, 59))
    assert naive.column("request_id").to_pylist() == ["a59"]
    mine = project.predictions.read("churn", deployment_id=churn)
    assert mine.num_rows == 60
    assert project.predictions.read("churn").num_rows == 61


def test_a_since_later_than_until_is_refused(project: Shipyard, churn: str) -> None:
    with pytest.raises(InvalidArgumentError, match="is later than until"):
        project.predictions.read("churn", since=T0, until=T0 - timedelta(seconds=1))


def test_reading_an_unknown_model_is_not_found(project: Shipyard, churn: str) -> None:
    with pytest.raises(NotFoundError, match="model 'ghost' does not exist"):
        project.predictions.read("ghost")
    empty = project.predictions.read("churn")
    assert empty.num_rows == 0
    assert "label" in empty.column_names


def test_feedback_joins_labels_and_the_last_label_wins(project: Shipyard, churn: str) -> None:
    assert project.predictions.feedback("churn", {"r1": 1, "early": 0}) == 2
    with _log(project, churn) as log:
        for request_id in ("r1", "r2", "early"):
            log.record(
                request_id=request_id, at=_at(0), version=1, inputs=[{}], outputs=[1], latency=0
            )
    project.predictions.feedback("churn", {"r1": 0}, deployment_id=churn)
    labels = dict(
        zip(
            *project.predictions.read("churn").select(["request_id", "label"]).to_pydict().values(),
            strict=True,
        )
    )
    assert labels == {"r1": 0, "r2": None, "early": 0}
    with project.metadata.read() as conn:
        assert conn.execute(select(func.count()).select_from(prediction_feedback)).scalar() == 2


def test_a_windowed_read_skips_labels_received_a_day_before_it(
    project: Shipyard, churn: str
) -> None:
    later = datetime.now(UTC) + timedelta(days=3)
    with _log(project, churn) as log:
        log.record(
            request_id="r1", at=later.timestamp(), version=1, inputs=[{}], outputs=[1], latency=0
        )
    project.predictions.feedback("churn", {"r1": 5})
    assert project.predictions.read("churn").column("label").to_pylist() == [5]
    near = project.predictions.read("churn", since=datetime.now(UTC) + timedelta(hours=12))
    assert near.column("label").to_pylist() == [5]
    far = project.predictions.read("churn", since=later - timedelta(hours=1))
    assert far.column("label").to_pylist() == [None]


@pytest.mark.parametrize(
    ("labels", "error", "match"),
    [
        ({"": 1}, InvalidArgumentError, "non-empty string"),
        ({"x" * 65: 1}, InvalidArgumentError, "longer than 64"),
        ({"r": None}, InvalidArgumentError, "give a value"),
        ({"r": float("nan")}, InvalidArgumentError, "give a value"),
        ({"r": object()}, InvalidArgumentError, "not a JSON value"),
    ],
)
def test_bad_feedback_is_refused_and_stores_nothing(
    project: Shipyard, churn: str, labels: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        project.predictions.feedback("churn", {"fine": 1, **labels})
    assert _labels(project) == {}


def test_feedback_for_an_unknown_model_is_refused(project: Shipyard, churn: str) -> None:
    with pytest.raises(NotFoundError, match="model 'ghost' does not exist"):
        project.predictions.feedback("ghost", {"r1": 1})
    assert _labels(project) == {}


def _labels(project: Shipyard) -> dict[str, str]:
    with project.metadata.read() as conn:
        rows = conn.execute(select(prediction_feedback.c.request_id, prediction_feedback.c.label))
        return {r[0]: r[1] for r in rows}


def test_feedback_from_a_csv_file_last_row_wins(
    project: Shipyard, churn: str, tmp_path: Path
) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("request_id,y,note\n007,1,a\nr2,0,b\n007,0,c\n")
    stored = project.predictions.feedback_file(
        "churn", path, id_column="request_id", label_column="y"
    )
    assert stored == 2
    assert _labels(project) == {"007": "0", "r2": "0"}  # ids stay text: 007 is not 7


@pytest.mark.parametrize(
    ("content", "options", "error", "match"),
    [
        ("request_id,label\nr1,1\n", {"label_column": "y"}, InvalidArgumentError, "no column 'y'"),
        ("id,y\nr1,1\n", {"label_column": "y"}, InvalidArgumentError, "columns are id, y"),
        ("request_id,label\nr1,1\nr2,\n", {}, InvalidArgumentError, "line 3: the label is empty"),
        ("request_id,label\n,1\n", {}, InvalidArgumentError, "line 2: the request_id is empty"),
        ('request_id,label\nr1,1\n"r2,2,3\n', {}, SourceError, "not a readable CSV"),
        (b"\xff\xfe\x00garbage\x00\x01\n", {}, SourceError, "not a readable CSV"),
    ],
)
def test_a_malformed_labels_file_is_refused_and_stores_nothing(
    project: Shipyard,
    churn: str,
    tmp_path: Path,
    content: str | bytes,
    options: dict[str, str],
    error: type[Exception],
    match: str,
) -> None:
    project.predictions.feedback("churn", {"r1": "kept"})
    path = tmp_path / "labels.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(error, match=match):
        project.predictions.feedback_file("churn", path, **options)
    with pytest.raises(SourceError, match="no such file"):
        project.predictions.feedback_file("churn", tmp_path / "missing.csv")
    assert _labels(project) == {"r1": '"kept"'}


def test_a_corrupted_batch_is_refused_naming_its_digest(project: Shipyard, churn: str) -> None:
    with _log(project, churn) as log:
        log.record(request_id="r", at=_at(0), version=1, inputs=[{"x": 1}], outputs=[1], latency=0)
    digest = _batches(project)[0].digest
    blob = Path(project.content.blobs.root) / project.content.key_of(digest)  # type: ignore[attr-defined]
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(CorruptBlobError, match=digest):
        project.predictions.read("churn")


def test_a_damaged_cached_copy_is_fetched_again(
    project: Shipyard, churn: str, settings: Settings
) -> None:
    with _log(project, churn) as log:
        log.record(request_id="r", at=_at(0), version=1, inputs=[{"x": 1}], outputs=[1], latency=0)
    assert project.predictions.read("churn").column("x").to_pylist() == [1]
    (cached,) = (settings.state_dir / "cache" / "predictions").rglob("*.parquet")
    cached.write_bytes(b"not parquet")
    assert project.predictions.read("churn").column("x").to_pylist() == [1]


def test_a_column_null_in_one_batch_reads_with_its_type_from_another(
    project: Shipyard, churn: str
) -> None:
    with _log(project, churn) as log:
        log.record(
            request_id="a", at=_at(0), version=1, inputs=[{"x": None}], outputs=[1], latency=0
        )
        log.flush()
        log.record(
            request_id="b", at=_at(1), version=1, inputs=[{"x": 2.5}], outputs=[2], latency=0
        )
    logged = project.predictions.read("churn")
    assert logged.column("x").to_pylist() == [None, 2.5]
    assert logged.schema.field("x").type == pa.float64()


def test_sql_sees_only_the_log(project: Shipyard, churn: str) -> None:
    with _log(project, churn) as log:
        for i in range(4):
            log.record(
                request_id=f"r{i}",
                at=_at(i),
                version=1 + i % 2,
                inputs=[{}],
                outputs=[i],
                latency=0,
            )
    result = project.predictions.sql(
        "churn", "select version, count(*) as n from predictions group by 1 order by 1"
    )
    assert result.to_pylist() == [{"version": 1, "n": 2}, {"version": 2, "n": 2}]
    with pytest.raises(InvalidArgumentError, match="query failed"):
        project.predictions.sql("churn", "select * from read_csv('/etc/passwd')")
    with pytest.raises(InvalidArgumentError, match="query failed"):
        project.predictions.sql("churn", "select nonsense from")


_WRITER = """
import sys, time
from shipyard.app import build
from shipyard.settings import Settings

settings = Settings.load(sys.argv[1], env={}, metadata_uri=sys.argv[2], user="bob")
project = build(settings)
log = project.predictions.log(deployment_id="d1", name="churn", max_rows=20, max_delay=0.01)
for i in range(100):
    log.record(request_id=f"f{i}", at=time.time(), version=1, inputs=[{"x": i}], outputs=[i],
               latency=0.001)
log.flush()
print("flushed", flush=True)
i = 0
while True:
    log.record(request_id=f"s{i}", at=time.time(), version=1, inputs=[{"x": i}], outputs=[i],
               latency=0.001)
    i += 1
    time.sleep(0.0002)
"""


def test_kill_9_of_a_writer_loses_at_most_its_queue(
    project: Shipyard, churn: str, settings: Settings
) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(settings.root), settings.metadata_uri],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "flushed"
        _wait_for(lambda: len(_batches(project)) >= 15, timeout=60)
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        assert writer.stdout is not None
        writer.stdout.close()
    batches = _batches(project)
    for batch in batches:  # no row points at a missing or damaged file
        assert project.content.verify(batch.digest) is None
    logged = project.predictions.read("churn")
    assert logged.num_rows == sum(b.rows for b in batches) > 100
    ids = logged.column("request_id").to_pylist()
    assert len(set(ids)) == len(ids)
    assert {f"f{i}" for i in range(100)} <= set(ids)


def test_batches_of_chunked_requests_hold_whole_requests_up_to_max_rows_in_order(
    project: Shipyard, churn: str
) -> None:
    # 700 one-row requests, then 40 of three rows: record() converts 128 rows at a time, and
    # the writer cuts those tables at request boundaries to respect max_rows.
    with _log(project, churn, max_rows=200) as log:
        for i in range(700):
            log.record(
                request_id=f"a{i}", at=_at(i), version=1, inputs=[{"x": i}], outputs=[i], latency=0
            )
        for i in range(40):
            log.record(
                request_id=f"b{i}",
                at=_at(700 + i),
                version=1,
                inputs=[{"x": 1000 + i}] * 3,
                outputs=[0, 1, 2],
                latency=0,
            )
    # 100 one-row requests and 33 of three rows fill 199 rows: the 34th would not fit
    assert [b.rows for b in _batches(project)] == [200, 200, 200, 199, 21]
    rows = project.predictions.read("churn").to_pylist()
    ids = [r["request_id"] for r in rows]
    assert ids[:700] == [f"a{i}" for i in range(700)]
    assert ids[700:] == [f"b{i}" for i in range(40) for _ in range(3)]
    assert [r["row"] for r in rows[700:703]] == [0, 1, 2]
    batches = _batches(project)
    assert batches[0].first_at == T0 and batches[0].last_at == T0 + timedelta(minutes=199)


def test_a_column_typed_differently_in_two_chunks_is_stored_as_one_batch_would_be(
    project: Shipyard, churn: str
) -> None:
    # numbers for 200 requests, then text: the chunks record() made are typed apart
    with _log(project, churn, max_rows=1000) as log:
        for i in range(400):
            log.record(
                request_id=f"r{i}",
                at=_at(i),
                version=1,
                inputs=[{"v": i if i < 200 else f"t{i}", "w": None if i < 300 else 1.5}],
                outputs=[0],
                latency=0,
            )
    (batch,) = _batches(project)
    assert batch.rows == 400
    rows = project.predictions.read("churn").to_pylist()
    assert [r["v"] for r in rows[198:202]] == ["198", "199", '"t200"', '"t201"']  # JSON text
    assert rows[0]["w"] is None and rows[-1]["w"] == 1.5


def test_a_request_of_many_rows_is_converted_by_the_writer_and_stored_whole(
    project: Shipyard, churn: str
) -> None:
    with _log(project, churn, max_rows=5000) as log:
        log.record(
            request_id="small", at=_at(0), version=1, inputs=[{"x": 0}], outputs=[0], latency=0
        )
        big = [{"x": float(i)} for i in range(3000)]
        log.record(
            request_id="big", at=_at(1), version=1, inputs=big, outputs=[1] * 3000, latency=0
        )
    (batch,) = _batches(project)
    assert batch.rows == 3001
    rows = project.predictions.read("churn").to_pylist()
    assert [r["x"] for r in rows[1:]] == [float(i) for i in range(3000)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_the_writer_thread_runs_at_a_lower_priority_than_serving(
    project: Shipyard, churn: str
) -> None:
    with _log(project, churn) as log:
        log.record(request_id="r", at=_at(0), version=1, inputs=[{}], outputs=[0], latency=0)
        writer = log._thread.native_id
        assert writer is not None
        _wait_for(
            lambda: os.getpriority(os.PRIO_PROCESS, writer) > os.getpriority(os.PRIO_PROCESS, 0)
        )
        assert os.getpriority(os.PRIO_PROCESS, writer) == os.getpriority(os.PRIO_PROCESS, 0) + 10

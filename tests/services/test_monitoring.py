"""MonitoringService on a real project: drift, quality, operations, storage and bad input."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier

from shipyard.app import Shipyard, build
from shipyard.domain.ids import utcnow
from shipyard.domain.lineage import Node
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.settings import Settings


def _wine() -> tuple[pd.DataFrame, pd.Series]:
    data = load_wine(as_frame=True)
    return data.data, data.target


def _trained(project: Shipyard) -> tuple[pd.DataFrame, Any]:
    """wine-data@1 -> a run with accuracy -> wine@1, the usual lineage."""
    X, y = _wine()
    model = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, y)
    dataset = project.datasets.add("wine-data", X.assign(target=y)).version
    with project.runs.start_run("wine", capture=False) as run:
        run.use_dataset(dataset.ref)
        run.log_metric("accuracy", 0.97)
        run.log_model(model, "wine", input_example=X[:5], onnx=False)
    return X, model


def _log(
    project: Shipyard,
    rows: pd.DataFrame,
    predictions: Sequence[Any],
    *,
    version: int = 1,
    prefix: str = "r",
    latency: float = 0.004,
) -> list[str]:
    """Write rows to the prediction log as the server does, one request per row."""
    ids = []
    with project.predictions.log(deployment_id="dep-1", name="wine") as log:
        for i, (record, prediction) in enumerate(
            zip(rows.to_dict(orient="records"), predictions, strict=True)
        ):
            request_id = f"{prefix}-{i}"
            ids.append(request_id)
            log.record(
                request_id=request_id,
                at=time.time(),
                version=version,
                inputs=[record],
                outputs=[int(prediction)],
                latency=latency * (1 + i % 10),
            )
    return ids


@pytest.fixture
def wine(project: Shipyard) -> tuple[Shipyard, pd.DataFrame, Any]:
    X, model = _trained(project)
    return project, X, model


def test_a_window_like_the_training_data_does_not_drift(
    wine: tuple[Shipyard, pd.DataFrame, Any],
) -> None:
    project, X, model = wine
    sample = X.sample(120, random_state=1)
    _log(project, sample, model.predict(sample))
    run = project.monitoring.run("wine@1", window="1h")
    assert run.status == "ok"
    assert run.reference == "wine-data@1"  # found through lineage
    assert run.rows == 120
    assert run.metrics["drift_share"] < 0.3
    assert run.metrics["latency_p50_ms"] > 0
    assert run.metrics["latency_p99_ms"] >= run.metrics["latency_p95_ms"]
    assert run.metrics["requests"] == 120
    assert "drift_score.alcohol" in run.metrics
    edges = project.lineage.graph(Node("monitor_run", run.id), depth=1).upstream
    assert {(e.source.kind, e.source.id) for e in edges} == {
        ("model_version", "wine@1"),
        ("deployment", "dep-1"),
    }


def test_shifted_rows_drift_and_the_run_is_stored_with_its_reports(
    wine: tuple[Shipyard, pd.DataFrame, Any],
) -> None:
    project, X, model = wine
    shifted = X.sample(150, random_state=2) * 1.6 + 1.0
    ids = _log(project, shifted, model.predict(shifted))
    project.predictions.feedback("wine", {ids[0]: 0, ids[1]: 1, ids[2]: 2})
    run = project.monitoring.run("wine@1", window="1h")
    assert run.metrics["drift_share"] > 0.5
    assert run.metrics["dataset_drift"] == 1.0
    assert run.metrics["labelled_rows"] == 3
    assert run.metrics["baseline_accuracy"] == 0.97
    stored = project.monitoring.show(run.id)
    assert stored.metrics == run.metrics
    assert stored.status == run.status == "ok"  # no rules configured: no alert
    report = project.monitoring.report(run.id)
    assert report["report"]["dataset_drift"] is True
    assert report["run"]["id"] == run.id
    page = project.monitoring.report_html(run.id)
    assert "<svg" in page and "Drift score per feature" in page and "alcohol" in page
    assert "<script src" not in page  # self-contained
    # the prediction log's own columns are no "new column" finding
    assert not [i for i in report["report"]["quality"]["issues"] if "'prediction'" in i]
    assert [r.id for r in project.monitoring.history("wine")] == [run.id]


def test_history_is_newest_first_and_feeds_the_quality_over_time_plot(
    wine: tuple[Shipyard, pd.DataFrame, Any],
) -> None:
    project, X, model = wine
    sample = X.sample(80, random_state=3)
    _log(project, sample, model.predict(sample))
    first = project.monitoring.run("wine@1", window="1h")
    second = project.monitoring.run("wine@1", window="1h")
    assert [r.id for r in project.monitoring.history("wine@1", limit=5)] == [second.id, first.id]
    assert "drift_share over time" in project.monitoring.report_html(second.id)
    text = project.monitoring.metrics_text()
    assert 'shipyard_monitor_drift_share{model="wine",version="1"}' in text
    assert 'shipyard_monitor_drift_score{model="wine",version="1",feature="alcohol"}' in text


def test_an_empty_window_is_no_data_not_a_crash(
    wine: tuple[Shipyard, pd.DataFrame, Any],
) -> None:
    project, _, _ = wine
    run = project.monitoring.run("wine@1", window="1h")
    assert run.status == "no_data"
    assert run.rows == 0
    report = project.monitoring.report(run.id)["report"]
    assert any("holds no rows" in issue for issue in report["quality"]["issues"])


def test_an_old_window_leaves_newer_rows_out(wine: tuple[Shipyard, pd.DataFrame, Any]) -> None:
    project, X, model = wine
    sample = X.sample(30, random_state=4)
    _log(project, sample, model.predict(sample))
    run = project.monitoring.run("wine@1", window="1h", now=utcnow() - timedelta(hours=2))
    assert run.status == "no_data"


def test_a_reference_missing_a_column_is_reported_by_name(
    wine: tuple[Shipyard, pd.DataFrame, Any],
) -> None:
    project, X, model = wine
    _, y = _wine()
    partial = project.datasets.add(
        "wine-partial", X.drop(columns=["proline"]).assign(target=y, id=range(len(y)))
    )
    sample = X.sample(60, random_state=5)
    _log(project, sample, model.predict(sample))
    run = project.monitoring.run("wine@1", window="1h", reference=partial.version.ref)
    assert run.status == "ok"
    assert "drift_score.proline" not in run.metrics
    issues = project.monitoring.report(run.id)["report"]["quality"]["issues"]
    assert any("'proline'" in issue for issue in issues), issues
    assert not any("'id'" in issue for issue in issues), issues  # no model input: left out


def test_all_nan_and_constant_columns_are_judged_not_crashed_on(
    wine: tuple[Shipyard, pd.DataFrame, Any],
) -> None:
    project, X, model = wine
    sample = X.sample(60, random_state=6).copy()
    predictions = model.predict(sample)
    sample["ash"] = np.nan
    sample["hue"] = 1.0
    _log(project, sample, predictions)
    run = project.monitoring.run("wine@1", window="1h")
    assert run.metrics["missing_rate.ash"] == 1.0
    assert run.metrics["missing_rate"] > 0.05
    assert "drift_score.ash" not in run.metrics  # nothing finite to test
    assert run.metrics["drifted.hue"] == 1.0  # a constant column differs from the reference
    json.dumps(run.to_dict(), allow_nan=False)


def test_labels_for_unknown_request_ids_are_ignored(
    wine: tuple[Shipyard, pd.DataFrame, Any],
) -> None:
    project, X, model = wine
    sample = X.sample(40, random_state=7)
    ids = _log(project, sample, model.predict(sample))
    stored = project.predictions.feedback("wine", {"nobody-1": 1, "nobody-2": 0, ids[0]: 1})
    assert stored == 3
    run = project.monitoring.run("wine@1", window="1h")
    assert run.metrics["labelled_rows"] == 1
    assert run.rows == 40


def test_a_monitored_dataset_version_can_be_the_current_window(
    wine: tuple[Shipyard, pd.DataFrame, Any],
) -> None:
    project, X, _ = wine
    _, y = _wine()
    moved = project.datasets.add("wine-later", (X * 2).assign(target=y)).version
    run = project.monitoring.run("wine@1", current=moved.ref)
    assert run.current == "wine-later@1"
    assert run.window_start is None
    assert run.metrics["dataset_drift"] == 1.0


def test_bad_input_is_refused_naming_it(wine: tuple[Shipyard, pd.DataFrame, Any]) -> None:
    project, _, _ = wine
    with pytest.raises(InvalidArgumentError, match="duration"):
        project.monitoring.run("wine@1", window="yesterday")
    with pytest.raises(NotFoundError, match="wine@9"):
        project.monitoring.run("wine@9")
    with pytest.raises(NotFoundError):
        project.monitoring.run("wine@1", reference="nothing@1")
    with pytest.raises(NotFoundError, match="does not exist"):
        project.monitoring.show("0000")
    assert project.monitoring.history("wine") == []  # nothing was stored


def test_a_model_without_training_lineage_needs_a_reference(project: Shipyard) -> None:
    X, y = _wine()
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    with project.runs.start_run("bare", capture=False) as run:
        run.log_model(model, "wine", input_example=X[:5], onnx=False)
    with pytest.raises(InvalidArgumentError, match="--reference"):
        project.monitoring.run("wine@1")


def test_a_bad_alert_rule_in_settings_is_named(
    wine: tuple[Shipyard, pd.DataFrame, Any], settings: Settings
) -> None:
    project, _, _ = wine
    bad = settings.model_copy(update={"monitor_alerts": ("drift_share > 0.3", "drift >> 2")})
    with build(bad) as other, pytest.raises(InvalidArgumentError, match="drift >> 2"):
        other.monitoring.run("wine@1")
    assert project.monitoring.history("wine") == []


def test_a_run_that_fails_is_stored_as_failed_with_why(
    wine: tuple[Shipyard, pd.DataFrame, Any],
) -> None:
    from pathlib import Path

    from sqlalchemy import select

    from shipyard.errors import CorruptBlobError
    from shipyard.stores.metadata.schema import prediction_batches

    project, X, model = wine
    _log(project, X[:20], model.predict(X[:20]))
    with project.metadata.read() as conn:
        digest = conn.execute(select(prediction_batches.c.digest)).scalar_one()
    blob = Path(project.content.blobs.root) / project.content.key_of(digest)  # type: ignore[attr-defined]
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))

    with pytest.raises(CorruptBlobError, match=digest):
        project.monitoring.run("wine@1", window="1h")
    (failed,) = project.monitoring.history("wine")
    assert failed.status == "failed" and failed.rows == 0
    assert failed.error is not None and "CorruptBlobError" in failed.error
    assert digest in failed.error
    assert project.monitoring.show(failed.id).to_dict()["error"] == failed.error


def test_rules_the_run_cannot_evaluate_are_listed_with_why_and_stored(
    wine: tuple[Shipyard, pd.DataFrame, Any], settings: Settings
) -> None:
    project, X, model = wine
    sample = X.sample(60, random_state=8)
    _log(project, sample, model.predict(sample))
    rules = (
        "drift_share > 0.99",  # evaluated, does not fire
        "accuracy < 0.9",  # no labels in the window
        "drift_score.alcohl > 0.2",  # a misspelt column
        "baseline_f1 > 0.5",  # the training run logged accuracy only
    )
    with build(settings.model_copy(update={"monitor_alerts": rules})) as other:
        run = other.monitoring.run("wine@1", window="1h")
        stored = other.monitoring.show(run.id)
        page = other.monitoring.report_html(run.id)
    assert run.status == "ok" and run.alerts == ()
    assert [(r.rule, r.metric) for r in run.skipped] == [
        ("accuracy < 0.9", "accuracy"),
        ("drift_score.alcohl > 0.2", "drift_score.alcohl"),
        ("baseline_f1 > 0.5", "baseline_f1"),
    ]
    reasons = [r.reason for r in run.skipped]
    assert "no labelled rows" in reasons[0]
    assert "no feature column 'alcohl'" in reasons[1] and "alcohol" in reasons[1]
    assert "logged no f1" in reasons[2]
    assert stored.skipped == run.skipped
    assert stored.to_dict()["skipped"][1]["metric"] == "drift_score.alcohl"
    assert "Rules not evaluated" in page and "alcohl" in page


def test_a_rule_with_labels_present_is_evaluated_not_skipped(
    wine: tuple[Shipyard, pd.DataFrame, Any], settings: Settings
) -> None:
    project, X, model = wine
    sample = X.sample(60, random_state=9)
    ids = _log(project, sample, model.predict(sample))
    project.predictions.feedback("wine", dict.fromkeys(ids[:30], 0))
    update = {"monitor_alerts": ("accuracy < 0.99", "roc_auc < 0.5")}
    with build(settings.model_copy(update=update)) as other:
        run = other.monitoring.run("wine@1", window="1h")
    assert [a.rule for a in run.alerts] == ["accuracy < 0.99"]
    assert run.status == "alert"
    (skipped,) = run.skipped  # three classes and no logged probabilities: no ROC AUC
    assert skipped.metric == "roc_auc" and "probabilities" in skipped.reason

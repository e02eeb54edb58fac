"""Model quality through the real path: a served classifier, labels sent to its ``/feedback``
over HTTP, a monitor run that scores them against the training run and an alert on ROC AUC."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sqlalchemy import select

from shipyard.app import Shipyard, build
from shipyard.settings import Settings
from shipyard.stores.metadata.schema import prediction_feedback

from .conftest import Serve

_SERVED = 120  # held-out rows sent to the server, one request each
_LABELLED = 100  # of them, the ones that get a label back
_UNKNOWN = {"nobody-1": 1, "nobody-2": 0, "nobody-3": 1}  # ids no prediction carries


@dataclass(frozen=True)
class Traffic:
    """What the server answered for the held-out rows, one request per row."""

    ids: list[str]
    predictions: list[int]
    scores: list[float]  # the probability of class 1
    truth: list[int]


@pytest.fixture
def cancer(settings: Settings) -> Iterator[tuple[Shipyard, pd.DataFrame, pd.Series, float]]:
    """cancer-data@1 -consumed_by-> a run logging roc_auc -produced-> cancer@1.

    The project alerts on ``roc_auc < 0.8``.
    """
    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target
    train_X, train_y = X.iloc[_SERVED:], y.iloc[_SERVED:]
    held_X, held_y = X.iloc[:_SERVED], y.iloc[:_SERVED]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(train_X, train_y)
    auc = float(roc_auc_score(held_y, model.predict_proba(held_X)[:, 1]))
    alerting = settings.model_copy(update={"monitor_alerts": ("roc_auc < 0.8",)})
    with build(alerting) as project:
        dataset = project.datasets.add("cancer-data", train_X.assign(target=train_y)).version
        with project.runs.start_run("cancer", capture=False) as run:
            run.use_dataset(dataset.ref)
            run.log_metric("roc_auc", auc)
            run.log_model(model, "cancer", input_example=train_X[:5], onnx=False)
        yield project, held_X, held_y, auc


def _send(project: Shipyard, serve: Serve, rows: pd.DataFrame, truth: pd.Series) -> Traffic:
    """Serve cancer@1 for real and send each row as its own request (labels join by id)."""
    server = serve(project, "cancer@1")
    traffic = Traffic([], [], [], [int(v) for v in truth])
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for record in rows.to_dict("records"):
            answer = client.post("/predict", json={"records": [record]})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            traffic.ids.append(body["request_id"])
            traffic.predictions.append(int(body["predictions"][0]))
            traffic.scores.append(float(body["probabilities"][0][1]))
    server.stop()  # drains and flushes the prediction log
    return traffic


def _feedback(project: Shipyard, serve: Serve, labels: dict[str, int]) -> int:
    """Send labels to a server's ``/feedback`` (a fresh server: labels outlive deployments)."""
    server = serve(project, "cancer@1")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        answer = client.post("/feedback", json={"labels": labels})
        assert answer.status_code == 200, answer.text
        stored = answer.json()["stored"]
    server.stop()
    assert isinstance(stored, int)
    return stored


def test_wrong_labels_drop_roc_auc_below_the_rule_and_the_alert_fires(
    cancer: tuple[Shipyard, pd.DataFrame, pd.Series, float], serve: Serve
) -> None:
    project, rows, truth, auc = cancer
    traffic = _send(project, serve, rows, truth)
    # three labelled rows in five are flipped: the model now looks worse than chance
    given = [t if i % 5 < 2 else 1 - t for i, t in enumerate(traffic.truth[:_LABELLED])]
    labels = dict(zip(traffic.ids[:_LABELLED], given, strict=True))

    stored = _feedback(project, serve, {**labels, **_UNKNOWN})

    # unknown ids are stored like the others (their predictions may come later) ...
    assert stored == _LABELLED + len(_UNKNOWN)
    with project.metadata.read() as conn:
        kept = conn.execute(
            select(prediction_feedback.c.request_id).where(
                prediction_feedback.c.request_id.in_(list(_UNKNOWN))
            )
        ).scalars()
        assert sorted(kept) == sorted(_UNKNOWN)
    run = project.monitoring.run("cancer@1", window="1h")

    # ... and join no row: only the served, labelled rows are judged
    assert run.rows == _SERVED
    assert run.reference == "cancer-data@1"  # the training data, through lineage
    assert run.metrics["labelled_rows"] == _LABELLED
    expected = roc_auc_score(given, traffic.scores[:_LABELLED])
    assert expected < 0.8
    assert run.metrics["roc_auc"] == pytest.approx(expected, abs=1e-12)
    assert run.metrics["accuracy"] == pytest.approx(
        accuracy_score(given, traffic.predictions[:_LABELLED])
    )
    assert run.metrics["baseline_roc_auc"] == pytest.approx(auc)
    assert run.status == "alert"
    assert [(a.rule, a.metric) for a in run.alerts] == [("roc_auc < 0.8", "roc_auc")]
    assert run.alerts[0].value == pytest.approx(expected)
    stored_run = project.monitoring.show(run.id)
    assert stored_run.status == "alert" and stored_run.metrics == run.metrics
    text = project.monitoring.metrics_text(["cancer"])
    assert 'shipyard_monitor_model_metric{model="cancer",version="1",metric="roc_auc"}' in text


def test_true_labels_keep_roc_auc_near_training_and_nothing_fires(
    cancer: tuple[Shipyard, pd.DataFrame, pd.Series, float], serve: Serve
) -> None:
    project, rows, truth, auc = cancer
    traffic = _send(project, serve, rows, truth)
    given = traffic.truth[:_LABELLED]
    labels = dict(zip(traffic.ids[:_LABELLED], given, strict=True))

    assert _feedback(project, serve, {**labels, **_UNKNOWN}) == _LABELLED + len(_UNKNOWN)
    run = project.monitoring.run("cancer@1", window="1h")

    assert run.metrics["labelled_rows"] == _LABELLED
    expected = roc_auc_score(given, traffic.scores[:_LABELLED])
    assert run.metrics["roc_auc"] == pytest.approx(expected, abs=1e-12)
    assert run.metrics["roc_auc"] >= 0.8
    assert run.metrics["accuracy"] == pytest.approx(
        accuracy_score(given, traffic.predictions[:_LABELLED])
    )
    assert run.metrics["baseline_roc_auc"] == pytest.approx(auc)
    assert run.status == "ok"
    assert run.alerts == ()

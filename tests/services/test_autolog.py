from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from joblib import parallel_config
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, mean_absolute_error, r2_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import shipyard
from shipyard.app import Shipyard
from shipyard.domain.runs import Run
from shipyard.errors import InvalidArgumentError
from shipyard.services.autolog import EXPERIMENT, Autolog, enable_autolog
from shipyard.services.runs import ActiveRun

Enable = Callable[..., Autolog]


@pytest.fixture
def autolog(project: Shipyard) -> Iterator[Enable]:
    """Enables autolog on the project; whatever was enabled is disabled afterwards."""
    enabled: list[Autolog] = []

    def enable(**options: Any) -> Autolog:
        enabled.append(enable_autolog(project.runs, **options))
        return enabled[-1]

    yield enable
    for each in enabled:
        each.disable()
    assert not any(a.enabled for a in enabled)


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, pd.Series]:
    data = load_iris(as_frame=True)
    return data.data, data.target


@pytest.fixture(scope="module")
def diabetes() -> tuple[pd.DataFrame, pd.Series]:
    data = load_diabetes(as_frame=True)
    return data.data, data.target


def _autolog_runs(project: Shipyard) -> list[Run]:
    return list(project.runs.search(EXPERIMENT))


def test_a_classifier_fit_logs_params_metrics_tags_and_a_loadable_model(
    project: Shipyard, autolog: Enable, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = iris
    autolog()
    model = LogisticRegression(C=0.5, max_iter=1000)
    assert model.fit(X, y) is model
    [run] = _autolog_runs(project)
    assert run.status == "finished" and run.name == "LogisticRegression"
    assert run.params["C"] == "0.5" and run.params["max_iter"] == "1000"
    assert run.metrics["training_accuracy"].value == pytest.approx(
        accuracy_score(y, model.predict(X))
    )
    for key in ("training_precision", "training_recall", "training_f1", "training_roc_auc"):
        assert 0.9 < run.metrics[key].value <= 1.0
    assert run.tags["estimator_name"] == "LogisticRegression"
    assert run.tags["estimator_class"].endswith(".LogisticRegression")
    assert run.tags["estimator_class"].startswith("sklearn.linear_model.")
    version = project.registry.resolve("autolog-logisticregression@latest")
    assert version.run_id == run.id and version.flavor == "sklearn"
    loaded = project.models.load("autolog-logisticregression@1")
    np.testing.assert_array_equal(loaded.predict(X[:10]), model.predict(X[:10]))


def test_a_pipeline_logs_one_run_with_its_own_params(
    project: Shipyard, autolog: Enable, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = iris
    autolog(log_models=False)
    forest = RandomForestClassifier(n_estimators=10, max_depth=3, random_state=0)
    pipeline = Pipeline([("scale", StandardScaler()), ("forest", forest)])
    pipeline.fit(X, y)
    [run] = project.runs.search()
    assert run.experiment == EXPERIMENT and run.name == "Pipeline"
    assert run.params["steps"] == (
        '[["scale", "StandardScaler"], ["forest", "RandomForestClassifier"]]'
    )
    assert "n_estimators" not in run.params, "the forest's own fit logged nothing"
    assert run.tags["estimator_name"] == "Pipeline"
    assert "training_accuracy" in run.metrics


def test_a_grid_search_logs_best_score_and_best_params_in_one_run(
    project: Shipyard, autolog: Enable, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = iris
    autolog(log_models=False)
    search = GridSearchCV(LogisticRegression(max_iter=1000), {"C": [0.01, 1.0]}, cv=3)
    # The cross-validation fits run in joblib worker threads: they are part of this fit too.
    with parallel_config(backend="threading", n_jobs=2):
        search.fit(X, y)
    [run] = project.runs.search()
    assert run.name == "GridSearchCV"
    assert run.metrics["best_score"].value == pytest.approx(search.best_score_)
    assert run.tags["best_param.C"] == str(search.best_params_["C"])
    assert run.params["estimator"] == "LogisticRegression"
    assert run.params["param_grid"] == '{"C": [0.01, 1.0]}'
    assert "training_accuracy" in run.metrics


def test_a_fit_inside_an_active_run_logs_into_it(
    project: Shipyard, autolog: Enable, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = iris
    autolog(registered_model_name="iris-model")
    with project.runs.start_run("mine", capture=False) as run:
        LogisticRegression(max_iter=1000).fit(X, y)
    [only] = project.runs.search()
    assert only.id == run.id and only.experiment == "mine" and only.status == "finished"
    assert only.params["max_iter"] == "1000"
    assert "training_accuracy" in only.metrics
    assert project.registry.resolve("iris-model@1").run_id == run.id


def test_a_regressor_logs_training_r2_mae_and_rmse(
    project: Shipyard, autolog: Enable, diabetes: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = diabetes
    autolog(log_models=False)
    model = Ridge(alpha=0.1).fit(X, y)
    [run] = _autolog_runs(project)
    predicted = model.predict(X)
    assert run.metrics["training_r2"].value == pytest.approx(r2_score(y, predicted))
    assert run.metrics["training_mae"].value == pytest.approx(mean_absolute_error(y, predicted))
    rmse = float(np.sqrt(np.mean((y - predicted) ** 2)))
    assert run.metrics["training_rmse"].value == pytest.approx(rmse)
    assert not any(k.startswith("training_acc") for k in run.metrics)


def test_disable_restores_the_original_fit_methods(
    project: Shipyard, autolog: Enable, diabetes: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = diabetes
    classes = (LogisticRegression, LinearRegression, Pipeline, GridSearchCV, RandomForestClassifier)
    originals = [cls.fit for cls in classes]
    enabled = autolog(log_models=False)
    assert all(cls.fit is not fit for cls, fit in zip(classes, originals, strict=True))
    enabled.disable()
    enabled.disable()  # twice is a no-op
    assert all(cls.fit is fit for cls, fit in zip(classes, originals, strict=True))
    LinearRegression().fit(X, y)
    assert project.runs.search() == []


def test_enabling_again_replaces_the_previous_autolog(
    project: Shipyard, autolog: Enable, diabetes: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = diabetes
    first = autolog(log_models=False)
    second = autolog(log_models=False, max_params=1)
    assert not first.enabled and second.enabled
    LinearRegression().fit(X, y)
    [run] = _autolog_runs(project)
    assert len(run.params) == 1, "one autolog recorded the fit, with its own options"


def test_a_logging_failure_warns_and_the_fit_still_returns_the_estimator(
    project: Shipyard,
    autolog: Enable,
    iris: tuple[pd.DataFrame, pd.Series],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    X, y = iris

    def refuse(self: ActiveRun, model: Any, name: str, **options: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(ActiveRun, "log_model", refuse)
    autolog()
    model = LogisticRegression(max_iter=1000)
    with pytest.warns(RuntimeWarning, match=r"could not log the model .*disk full") as caught:
        fitted = model.fit(X, y)
    assert caught[0].filename == __file__, "the warning points at the caller's fit"
    assert fitted is model and hasattr(model, "coef_")
    [run] = _autolog_runs(project)
    assert run.status == "finished" and "training_accuracy" in run.metrics


def test_a_fit_that_raises_marks_the_autolog_run_failed(project: Shipyard, autolog: Enable) -> None:
    autolog()
    X = np.array([[0.0], [np.nan], [1.0]])
    with pytest.raises(ValueError, match="NaN"):
        LogisticRegression().fit(X, [0, 1, 0])
    [run] = _autolog_runs(project)
    assert run.status == "failed" and run.end_time is not None
    assert run.params["C"] == "1.0", "params logged before the fit are kept"
    assert project.registry.models() == [], "a failed fit logs no model"


def test_a_transformer_is_recorded_without_a_model_and_without_warnings(
    project: Shipyard, autolog: Enable, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, _ = iris
    autolog()
    StandardScaler().fit(X)
    [run] = _autolog_runs(project)
    assert run.params == {"copy": "True", "with_mean": "True", "with_std": "True"}
    assert run.metrics == {}


def test_options_are_checked_when_enabling(project: Shipyard) -> None:
    fit = LogisticRegression.fit
    with pytest.raises(InvalidArgumentError):
        enable_autolog(project.runs, registered_model_name="no/slashes")
    with pytest.raises(InvalidArgumentError):
        enable_autolog(project.runs, max_params=-1)
    assert LogisticRegression.fit is fit, "nothing was patched"


def test_sy_autolog_records_into_the_default_project(
    project: Shipyard,
    diabetes: tuple[pd.DataFrame, pd.Series],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    X, y = diabetes
    monkeypatch.setattr(shipyard, "_default", project)
    with shipyard.autolog(log_models=False) as enabled:
        assert enabled.runs is project.runs
        LinearRegression().fit(X, y)
    assert not enabled.enabled
    assert [r.name for r in _autolog_runs(project)] == ["LinearRegression"]

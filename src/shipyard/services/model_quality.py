"""Model quality from labels and predictions, compared with the training run's metrics.

Classification: ``accuracy``, ``f1`` (binary: of the positive class; more classes: the macro
average) and, when probabilities of the positive class are given, ``roc_auc``. Regression:
``rmse``, ``mae`` and ``r2``. Computed with numpy (no scikit-learn in the hot path; the
tests check every figure against scikit-learn's). A metric is degraded when it is worse than
its baseline by more than ``tolerance`` (relative): below ``baseline * (1 - tolerance)`` for
metrics where higher is better, above ``baseline * (1 + tolerance)`` for errors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from shipyard.domain.drift import MetricCheck, ModelQuality
from shipyard.errors import InvalidArgumentError

__all__ = ["LOWER_IS_BETTER", "model_quality", "roc_auc"]

LOWER_IS_BETTER = frozenset({"rmse", "mae", "mse", "log_loss"})
Task = Literal["classification", "regression"]


def _array(values: Any, what: str) -> npt.NDArray[Any]:
    if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
        values = values.to_numpy(zero_copy_only=False) if _is_arrow(values) else values.to_numpy()
    out = np.asarray(values)
    if out.ndim != 1:
        raise InvalidArgumentError(f"{what} must be one-dimensional, got shape {out.shape}")
    return out


def _is_arrow(values: Any) -> bool:
    return type(values).__module__.startswith("pyarrow")


def _task(labels: npt.NDArray[Any], predictions: npt.NDArray[Any]) -> Task:
    for values in (labels, predictions):
        if values.dtype.kind == "f" and not np.all(np.isnan(values) | (values == np.round(values))):
            return "regression"
    return "classification"


def roc_auc(labels: npt.NDArray[Any], scores: npt.NDArray[Any], positive: Any) -> float:
    """Area under the ROC curve (ties count one half), as ``sklearn.metrics.roc_auc_score``.

    Raises:
        InvalidArgumentError: if only one class is present.
    """
    truth = labels == positive
    n_pos = int(np.count_nonzero(truth))
    n_neg = len(truth) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise InvalidArgumentError("ROC AUC needs both classes among the labels")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average_rank = ends - (counts - 1) / 2.0  # 1-based mean rank of each tied group
    rank_sum = float(np.sum(average_rank[inverse][truth]))
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _f1(labels: npt.NDArray[Any], predictions: npt.NDArray[Any], positive: Any) -> float:
    tp = np.count_nonzero((predictions == positive) & (labels == positive))
    fp = np.count_nonzero((predictions == positive) & (labels != positive))
    fn = np.count_nonzero((predictions != positive) & (labels == positive))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def model_quality(
    labels: Any,
    predictions: Any,
    *,
    scores: Any = None,
    task: Task | None = None,
    positive: Any = None,
    baseline: Mapping[str, float] | None = None,
    tolerance: float = 0.05,
) -> ModelQuality:
    """Quality metrics of predictions against labels, and degradation against a baseline.

    Args:
        labels: the true values (rows whose label is null or NaN are left out).
        predictions: the predicted values, one per label.
        scores: the probability of the positive class (binary classification), for ROC AUC.
        task: ``classification`` or ``regression`` (default: regression when labels or
            predictions hold non-integer floats).
        positive: the positive class (default: the largest label, e.g. 1 or True).
        baseline: metric name -> the training run's value; metrics not in it are not judged.
        tolerance: the relative worsening allowed before a metric is degraded.

    Returns:
        The metrics and their checks.

    Raises:
        InvalidArgumentError: if lengths differ, no row is labelled, or the task is unknown.
    """
    y, p = _array(labels, "labels"), _array(predictions, "predictions")
    if len(y) != len(p):
        raise InvalidArgumentError(f"{len(y)} labels but {len(p)} predictions: give one each")
    keep = np.array([v is not None and not (isinstance(v, float) and math.isnan(v)) for v in y])
    if y.dtype.kind in "biuf":
        keep = ~np.isnan(y.astype(np.float64))
    y, p = y[keep], p[keep]
    s = None if scores is None else _array(scores, "scores")[keep].astype(np.float64)
    if not len(y):
        raise InvalidArgumentError("no labelled rows: give feedback labels before judging quality")
    task = task or _task(y, p)
    values: dict[str, float] = {}
    if task == "regression":
        error = p.astype(np.float64) - y.astype(np.float64)
        values["rmse"] = float(np.sqrt(np.mean(error**2)))
        values["mae"] = float(np.mean(np.abs(error)))
        spread = float(np.sum((y - y.mean()) ** 2))
        if spread > 0:
            values["r2"] = 1 - float(np.sum(error**2)) / spread
    elif task == "classification":
        classes = np.unique(np.concatenate([y, p]))
        values["accuracy"] = float(np.mean(y == p))
        if len(classes) <= 2:
            chosen = classes.max() if positive is None else positive
            values["f1"] = _f1(y, p, chosen)
            if s is not None and len(np.unique(y)) == 2:
                values["roc_auc"] = roc_auc(y, s, chosen)
        else:
            values["f1"] = float(np.mean([_f1(y, p, c) for c in classes]))
    else:
        raise InvalidArgumentError(f"unknown task {task!r}: use classification or regression")
    checks = []
    for name, value in values.items():
        higher = name not in LOWER_IS_BETTER
        base = None if baseline is None or name not in baseline else float(baseline[name])
        degraded = False
        if base is not None:
            degraded = value < base * (1 - tolerance) if higher else value > base * (1 + tolerance)
        checks.append(MetricCheck(name, value, base, higher, degraded))
    return ModelQuality(task=task, rows=len(y), metrics=tuple(checks), tolerance=tolerance)

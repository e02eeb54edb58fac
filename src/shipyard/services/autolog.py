"""Autolog: record scikit-learn fits as runs without changing the training code.

``enable_autolog(project.runs)`` wraps the ``fit`` of every scikit-learn estimator class (the
class in each estimator's MRO that defines ``fit``: a wrapper on ``BaseEstimator`` would miss
every subclass with its own ``fit``). Only the outermost fit of a thread is recorded: the fits
a Pipeline, a search or an ensemble makes inside its own ``fit`` are part of it. Recording
never breaks a fit: whatever fails is reported as a ``RuntimeWarning`` and the fit's result is
returned as usual.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from multiprocessing.dummy import DummyProcess
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.domain.references import validate_name
from shipyard.errors import ConflictError, InvalidArgumentError, MissingDependencyError
from shipyard.services.runs import MAX_PARAM, ActiveRun, RunService

if TYPE_CHECKING:
    from shipyard.services.autolog_lightning import LightningAutolog

__all__ = ["EXPERIMENT", "Autolog", "enable_autolog"]

EXPERIMENT = "autolog"  # where a fit outside any run gets its own run
_METHOD = "fit"
_EXAMPLE_ROWS = 5
_WARN_LEVEL = 4  # the warning points at the user's fit: _warn <- _record <- wrapper <- user

_local = threading.local()  # .depth: fits in progress on this thread
_count_lock = threading.Lock()
_outer_fits = 0  # recorded fits in progress in the process
_patch_lock = threading.Lock()
_active: Autolog | None = None


class Autolog:
    """Autologging of scikit-learn fits into one project's runs; undo it with ``disable()``.

    Made by ``enable_autolog``; at most one is enabled at a time. Usable as a context manager
    that disables it on exit.
    """

    def __init__(
        self,
        runs: RunService,
        *,
        log_models: bool,
        registered_model_name: str | None,
        max_params: int,
    ) -> None:
        self.runs = runs
        self.log_models = log_models
        self.registered_model_name = registered_model_name
        self.max_params = max_params
        self._originals: dict[type, Callable[..., Any]] = {}
        self._wrappers: dict[type, Callable[..., Any]] = {}
        self._lightning: LightningAutolog | None = None
        self._enabled = False

    def __repr__(self) -> str:
        state = "enabled" if self._enabled else "disabled"
        return f"<autolog {state}, {len(self._originals)} fit methods patched>"

    @property
    def enabled(self) -> bool:
        """Whether fits are being recorded."""
        return self._enabled

    def disable(self) -> None:
        """Put every original ``fit`` back; fits are no longer recorded. Twice is a no-op."""
        global _active
        with _patch_lock:
            self._restore()
            if _active is self:
                _active = None

    def __enter__(self) -> Autolog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disable()

    # -- patching ------------------------------------------------------------------------------

    def _install(self) -> None:
        try:
            from sklearn.utils import all_estimators
        except ModuleNotFoundError:
            raise MissingDependencyError("scikit-learn", "ml") from None
        for _, cls in all_estimators():
            owner = next((k for k in cls.__mro__ if _METHOD in vars(k)), None)
            if owner is None or owner in self._originals:
                continue
            original = vars(owner)[_METHOD]
            if not inspect.isfunction(original):  # a descriptor we could not wrap faithfully
                continue
            wrapper = self._wrap(original)
            self._originals[owner] = original
            self._wrappers[owner] = wrapper
            setattr(owner, _METHOD, wrapper)
        from shipyard.services.autolog_lightning import LightningAutolog

        if LightningAutolog.available():
            self._lightning = LightningAutolog(
                self.runs,
                log_models=self.log_models,
                registered_model_name=self.registered_model_name,
            )
            self._lightning.enable()
        self._enabled = True

    def _restore(self) -> None:
        for owner, original in self._originals.items():
            # Someone who wrapped our wrapper since keeps theirs; ours then just calls through.
            if vars(owner).get(_METHOD) is self._wrappers[owner]:
                setattr(owner, _METHOD, original)
        self._originals.clear()
        self._wrappers.clear()
        if self._lightning is not None:
            self._lightning.disable()
            self._lightning = None
        self._enabled = False

    def _wrap(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)  # keeps the signature that metadata routing inspects
        def fit(estimator: Any, *args: Any, **kwargs: Any) -> Any:
            if not self._enabled or _nested():
                return original(estimator, *args, **kwargs)
            with _outermost():
                return self._record(original, estimator, args, kwargs)

        return fit

    # -- recording -----------------------------------------------------------------------------

    def _record(
        self,
        original: Callable[..., Any],
        estimator: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        problems: list[str] = []

        def attempt(what: str, action: Callable[[], Any]) -> Any:
            try:
                return action()
            except Exception as exc:
                problems.append(f"{what} ({type(exc).__name__}: {exc})")
                return None

        X = args[0] if args else kwargs.get("X")
        y = args[1] if len(args) > 1 else kwargs.get("y")
        run: ActiveRun | None = self.runs.active_run()
        owned: ActiveRun | None = None
        if run is None:
            name = type(estimator).__name__
            owned = run = attempt("start a run", lambda: self.runs.start_run(EXPERIMENT, name=name))
        if run is not None:
            active = run
            attempt("log params", lambda: self._log_params(active, estimator, mine=owned))
            attempt("set tags", lambda: active.set_tags(_class_tags(estimator)))
        try:
            result = original(estimator, *args, **kwargs)
        except BaseException as exc:
            if owned is not None:
                status = "killed" if isinstance(exc, KeyboardInterrupt) else "failed"
                attempt("end the run", lambda: owned.end(status))
            _warn(estimator, problems, failing=exc)
            raise
        if run is not None:
            active = run
            weights = kwargs.get("sample_weight")
            metrics: dict[str, float] = {}
            for what, compute in _metric_steps(estimator, X, y, weights):
                metrics.update(attempt(f"compute {what}", compute) or {})
            if metrics:
                attempt("log metrics", lambda: active.log_metrics(metrics))
            attempt("log the search results", lambda: _log_search(active, estimator))
            if self.log_models and hasattr(estimator, "predict"):
                attempt("log the model", lambda: self._log_model(active, estimator, X))
        if owned is not None:
            attempt("end the run", lambda: owned.end("finished"))
        _warn(estimator, problems)
        return result

    def _log_params(self, run: ActiveRun, estimator: Any, *, mine: ActiveRun | None) -> None:
        params = _params(estimator, self.max_params)
        clashes: list[str] = []
        if run is not mine:  # a run of the user's may hold params of an earlier fit
            existing = self.runs.get(run.id).params
            clashes = sorted(k for k, v in params.items() if existing.get(k, v) != v)
            params = {k: v for k, v in params.items() if k not in clashes}
        if params:
            run.log_params(params)
        if clashes:
            raise ConflictError(
                f"the run holds other values for {', '.join(clashes)} from an earlier fit; "
                "those were kept (fit each estimator in its own run to record all)"
            )

    def _log_model(self, run: ActiveRun, estimator: Any, X: Any) -> None:
        name = self.registered_model_name or f"autolog-{type(estimator).__name__.lower()}"
        run.log_model(estimator, name, input_example=_head(X, _EXAMPLE_ROWS), training_sample=X)


def enable_autolog(
    runs: RunService,
    *,
    log_models: bool = True,
    registered_model_name: str | None = None,
    max_params: int = 100,
) -> Autolog:
    """Record every scikit-learn fit as a run (or into the active run) until disabled.

    A fit inside a ``with runs.start_run(...)`` block of this thread logs into that run;
    elsewhere it gets its own run in experiment ``autolog``, named after the estimator's
    class, that ends with the fit (``failed`` if the fit raises). Recorded: params
    (``get_params(deep=False)``), training metrics (``training_accuracy``, ``_precision``,
    ``_recall``, ``_f1``, ``_roc_auc`` for classifiers; ``training_r2``, ``_mae``, ``_rmse``
    for regressors), ``best_score`` and ``best_param.*`` tags for searches, the tags
    ``estimator_class`` and ``estimator_name``, and the fitted model. Enabling again replaces
    the previous autolog. With Lightning installed, every ``lightning.pytorch.Trainer.fit``
    is recorded the same way through a ``ShipyardLogger`` (see
    ``shipyard.services.autolog_lightning``).

    Args:
        runs: the project's run service.
        log_models: log each fitted estimator that predicts as a model version.
        registered_model_name: the model every version is logged under (default:
            ``autolog-<class name in lower case>``).
        max_params: log at most this many params of an estimator.

    Returns:
        The enabled autolog; call ``disable()`` (or leave its ``with`` block) to stop.

    Raises:
        InvalidArgumentError: for an invalid model name or a negative ``max_params``.
        MissingDependencyError: if scikit-learn is not installed.

    Example:
        >>> autolog = enable_autolog(project.runs)  # doctest: +SKIP
        >>> LogisticRegression(max_iter=1000).fit(X, y)  # doctest: +SKIP
        >>> autolog.disable()  # doctest: +SKIP
    """
    global _active
    if registered_model_name is not None:
        validate_name(registered_model_name, what="model name")
    if isinstance(max_params, bool) or not isinstance(max_params, int) or max_params < 0:
        raise InvalidArgumentError(f"max_params is a whole number >= 0, not {max_params!r}")
    autolog = Autolog(
        runs,
        log_models=log_models,
        registered_model_name=registered_model_name,
        max_params=max_params,
    )
    with _patch_lock:
        if _active is not None:
            _active._restore()
        autolog._install()
        _active = autolog
    return autolog


# -- nesting ---------------------------------------------------------------------------------


def _nested() -> bool:
    if getattr(_local, "depth", 0) > 0:
        return True
    # joblib's threading backend (a forest's n_jobs) fits in pool worker threads that do not
    # see the caller's depth: a fit there while a recorded fit is in progress is part of it.
    return _outer_fits > 0 and isinstance(threading.current_thread(), DummyProcess)


@contextlib.contextmanager
def _outermost() -> Iterator[None]:
    global _outer_fits
    _local.depth = getattr(_local, "depth", 0) + 1
    with _count_lock:
        _outer_fits += 1
    try:
        yield
    finally:
        _local.depth -= 1
        with _count_lock:
            _outer_fits -= 1


# -- what is recorded ------------------------------------------------------------------------


def _params(estimator: Any, limit: int) -> dict[str, str]:
    params = estimator.get_params(deep=False)
    return {str(key): _param_value(value) for key, value in list(params.items())[:limit]}


def _param_value(value: Any) -> str:
    plain = _plain(value)
    text = json.dumps(plain) if isinstance(plain, (list, dict)) else str(plain)
    return text if len(text) <= MAX_PARAM else text[: MAX_PARAM - 3] + "..."


def _plain(value: Any, depth: int = 0) -> Any:
    """Scalars as they are, small containers of them, anything else by its class name."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if depth < 3 and isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    if depth < 3 and isinstance(value, Mapping):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, type) or inspect.isroutine(value):
        return getattr(value, "__qualname__", type(value).__name__)
    return type(value).__name__


def _class_tags(estimator: Any) -> dict[str, str]:
    cls = type(estimator)
    return {
        "estimator_class": f"{cls.__module__}.{cls.__qualname__}",
        "estimator_name": cls.__name__,
    }


def _metric_steps(
    estimator: Any, X: Any, y: Any, weights: Any
) -> list[tuple[str, Callable[[], dict[str, float]]]]:
    """The training metrics to compute, each a step that may fail on its own."""
    from sklearn.base import is_classifier, is_regressor

    if y is None or X is None or not hasattr(estimator, "predict"):
        return []
    if is_classifier(estimator):
        steps = [("training classification metrics", lambda: _classifier(estimator, X, y, weights))]
        if hasattr(estimator, "predict_proba"):
            steps.append(("training ROC AUC", lambda: _roc_auc(estimator, X, y, weights)))
        return steps
    if is_regressor(estimator):
        return [("training regression metrics", lambda: _regressor(estimator, X, y, weights))]
    return []


def _classifier(estimator: Any, X: Any, y: Any, weights: Any) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    predicted = estimator.predict(X)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, predicted, average="weighted", sample_weight=weights, zero_division=0
    )
    return {
        "training_accuracy": float(accuracy_score(y, predicted, sample_weight=weights)),
        "training_precision": float(precision),
        "training_recall": float(recall),
        "training_f1": float(f1),
    }


def _roc_auc(estimator: Any, X: Any, y: Any, weights: Any) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    proba = np.asarray(estimator.predict_proba(X))
    if np.ndim(y) != 1 or proba.ndim != 2 or proba.shape[1] < 2:
        return {}  # multi-output: no single ROC AUC
    if proba.shape[1] == 2:
        auc = roc_auc_score(y, proba[:, 1], sample_weight=weights)
    else:
        labels = getattr(estimator, "classes_", None)
        auc = roc_auc_score(y, proba, multi_class="ovr", labels=labels, sample_weight=weights)
    return {"training_roc_auc": float(auc)}


def _regressor(estimator: Any, X: Any, y: Any, weights: Any) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    predicted = estimator.predict(X)
    return {
        "training_r2": float(r2_score(y, predicted, sample_weight=weights)),
        "training_mae": float(mean_absolute_error(y, predicted, sample_weight=weights)),
        "training_rmse": float(np.sqrt(mean_squared_error(y, predicted, sample_weight=weights))),
    }


def _log_search(run: ActiveRun, estimator: Any) -> None:
    """A search's best score as ``best_score`` and its best params as ``best_param.*`` tags."""
    best_score = getattr(estimator, "best_score_", None)
    if best_score is not None:
        run.log_metric("best_score", float(best_score))
    best_params = getattr(estimator, "best_params_", None)
    if isinstance(best_params, Mapping) and best_params:
        run.set_tags({f"best_param.{k}": _param_value(v) for k, v in best_params.items()})


def _head(data: Any, rows: int) -> Any:
    if hasattr(data, "head"):
        return data.head(rows)
    if hasattr(data, "slice"):
        return data.slice(0, rows)
    return data[:rows]


def _warn(estimator: Any, problems: list[str], *, failing: BaseException | None = None) -> None:
    for problem in problems:
        message = (
            f"shipyard autolog could not {problem} for {type(estimator).__name__}; "
            "the fit itself is not affected"
        )
        try:
            warnings.warn(message, RuntimeWarning, stacklevel=_WARN_LEVEL)
        except Warning:
            # Warnings are errors here; the fit's own exception is the one to see.
            if failing is None:
                raise
            failing.add_note(message)

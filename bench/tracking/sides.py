"""The two sides of the tracking benchmark: shipyard and MLflow (SQLite store), same workloads.

Every method gets a fresh store from ``fresh(rep)`` (or works on the store of the search
workload) and returns the seconds of the timed part only; the setup that precedes it (store
creation, migrations, starting the run, building the data) is outside the timing, and a
check after it makes sure the work was really done.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import random
import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXPERIMENT = "bench"
SEARCH_EXPERIMENT = "search"
FILTER = "metrics.m0 > 0.5 and params.p1 = '3'"
ORDER_BY = "metrics.m2 desc"
PARAMS_PER_RUN = 10
METRICS_PER_RUN = 10


@dataclass(frozen=True)
class RunData:
    """The params and metrics of the runs the search workload creates (same for both sides)."""

    params: list[dict[str, str]]
    metrics: list[dict[str, float]]

    @classmethod
    def make(cls, count: int, seed: int) -> RunData:
        rng = random.Random(seed)
        params = [
            {f"p{k}": str(rng.randrange(10)) for k in range(PARAMS_PER_RUN)} for _ in range(count)
        ]
        metrics = [{f"m{k}": rng.random() for k in range(METRICS_PER_RUN)} for _ in range(count)]
        return cls(params, metrics)

    def slice(self, start: int, stop: int) -> RunData:
        return RunData(self.params[start:stop], self.metrics[start:stop])

    def expected_top(self, limit: int) -> list[float]:
        """m2 of the runs the filtered search must return, best first."""
        hits = [
            m["m2"]
            for p, m in zip(self.params, self.metrics, strict=True)
            if m["m0"] > 0.5 and p["p1"] == "3"
        ]
        return sorted(hits, reverse=True)[:limit]


def values(n: int, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    return [rng.random() for _ in range(n)]


class BenchError(RuntimeError):
    """A side did not do the work it was timed for."""


def _expect(what: str, got: object, want: object) -> None:
    if got != want:
        raise BenchError(f"{what}: got {got!r}, expected {want!r}")


class ShipyardSide:
    """shipyard in a fresh project folder per repetition (durability as given)."""

    name = "shipyard"

    def __init__(self, work: Path, durability: str = "full") -> None:
        self.work = work
        self.durability = durability
        self._sy: Any = None
        self._count = 0
        self.profiler: Any = None  # a cProfile.Profile to run during the timed parts only

    def _go(self) -> float:
        if self.profiler is not None:
            self.profiler.enable()
        return time.perf_counter()

    def _done(self) -> float:
        now = time.perf_counter()
        if self.profiler is not None:
            self.profiler.disable()
        return now

    def fresh(self, label: str) -> Any:
        import shipyard
        from shipyard.services.projects import init_project

        self.close()
        self._count += 1
        folder = self.work / f"shipyard-{self._count:03d}-{label}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        init_project(folder)
        self._sy = shipyard.connect(folder, durability=self.durability)
        return self._sy

    def close(self) -> None:
        if self._sy is not None:
            self._sy.close()
            self._sy = None

    # -- a) single log_metric calls -------------------------------------------------------------

    def log_metric(self, label: str, n: int, *, commit_each: bool) -> tuple[float, float]:
        """n log_metric calls on one run; (seconds of calls + end of run, seconds of calls)."""
        sy = self.fresh(label)
        data = values(n)
        run = sy.runs.start_run(EXPERIMENT, capture=False)
        log, flush = run.log_metric, run.flush
        start = self._go()
        if commit_each:
            for i in range(n):
                log("loss", data[i], step=i)
                flush()
        else:
            for i in range(n):
                log("loss", data[i], step=i)
        calls = time.perf_counter()
        run.end()
        end = self._done()
        history = sy.runs.metrics.history(run.id, "loss")
        _expect("shipyard points stored", len(history), n)
        self.close()
        return end - start, calls - start

    # -- b) one batch -----------------------------------------------------------------------------

    def batch(self, label: str, n: int, *, shape: str) -> float:
        """n points in one batch then flush: n keys at step 0 ("keys") or n steps of one key."""
        sy = self.fresh(label)
        data = values(n)
        run = sy.runs.start_run(EXPERIMENT, capture=False)
        metrics = {f"m{i}": data[i] for i in range(n)}
        start = self._go()
        if shape == "keys":
            run.log_metrics(metrics, step=0)
        else:
            log = run.log_metric
            for i in range(n):
                log("loss", data[i], step=i)
        run.flush()
        seconds = self._done() - start
        run.end()
        if shape == "keys":
            _expect("shipyard metric keys", len(sy.runs.metrics.keys(run.id)), n)
        else:
            _expect("shipyard points", len(sy.runs.metrics.history(run.id, "loss")), n)
        self.close()
        return seconds

    # -- c) search ---------------------------------------------------------------------------

    def create_runs(self, data: RunData) -> float:
        """Create one finished run per entry (10 params, 10 metrics each) in the search store."""
        if self._sy is None:
            self.fresh("search")
        sy = self._sy
        start_run = sy.runs.start_run
        start = self._go()
        for params, metrics in zip(data.params, data.metrics, strict=True):
            with start_run(SEARCH_EXPERIMENT, capture=False) as run:
                run.log_params(params)
                run.log_metrics(metrics, step=0)
        return self._done() - start

    def search_all(self, expected: int) -> float:
        start = self._go()
        frame = self._sy.runs.search(SEARCH_EXPERIMENT, max_results=expected).to_pandas()
        seconds = self._done() - start
        _expect("shipyard rows", len(frame), expected)
        _expect(
            "shipyard metric columns",
            sum(c.startswith("metrics.") for c in frame.columns),
            METRICS_PER_RUN,
        )
        return seconds

    def search_filtered(self, want: list[float]) -> float:
        start = self._go()
        frame = self._sy.runs.search(
            SEARCH_EXPERIMENT, filter=FILTER, order_by=[ORDER_BY], max_results=len(want)
        ).to_pandas()
        seconds = self._done() - start
        _expect("shipyard filtered m2", [round(v, 12) for v in frame["metrics.m2"]], _r(want))
        return seconds

    # -- d) registry ------------------------------------------------------------------------

    def register(self, label: str, n: int) -> float | None:
        """n versions of one tiny model via ``sy.models.log_model`` (stores and registers).

        None when this shipyard has no model registry (``sy.models``) yet.
        """
        sy = self.fresh(label)
        models = getattr(sy, "models", None)
        if models is None or not hasattr(models, "log_model"):
            self.close()
            return None
        from .tiny import TinyModel

        model = TinyModel()
        log_model = models.log_model
        start = self._go()
        for _ in range(n):
            version = log_model(model, "tiny", requirements=[], onnx=False)
        seconds = self._done() - start
        _expect("shipyard last version", version.version, n)
        self.close()
        return seconds

    def register_stored(self, label: str, n: int) -> float | None:
        """n versions registered from the stored files of one model logged beforehand.

        The counterpart of MLflow's ``register_model`` of a logged model: the model's files
        are content in the store already; each call records the next version of another
        name (``sy.models.register_stored``). None when this shipyard has no such call.
        """
        sy = self.fresh(label)
        models = getattr(sy, "models", None)
        if models is None or not hasattr(models, "register_stored"):
            self.close()
            return None
        from shipyard.services.hashing import StoredFile

        from .tiny import TinyModel

        logged = models.log_model(TinyModel(), "tiny-logged", requirements=[], onnx=False)
        files = [StoredFile(f["path"], f["size"], f["digest"]) for f in models.files(logged)]
        register = models.register_stored
        onnx = {"status": "unavailable", "reason": "not attempted"}
        start = self._go()
        for _ in range(n):
            version = register(
                "tiny",
                files,
                flavor=logged.flavor,
                signature=logged.signature,
                requirements=[],
                onnx=onnx,
            )
        seconds = self._done() - start
        _expect("shipyard last version", version.version, n)
        self.close()
        return seconds


class MlflowSide:
    """MLflow's fluent API and MlflowClient against a fresh SQLite store per repetition."""

    name = "MLflow"

    def __init__(self, work: Path) -> None:
        self.work = work
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        import mlflow
        import mlflow.pyfunc

        for logger in ("mlflow", "alembic"):  # store creation and registration chatter
            logging.getLogger(logger).setLevel(logging.WARNING)

        self.mlflow = mlflow
        self.version = mlflow.__version__
        self._search_experiment: str | None = None
        self._count = 0
        self._folder = work
        self.batch_note = ""

    def fresh(self, label: str) -> tuple[Any, str]:
        """A fresh SQLite store (tables created here, untimed); (client, experiment id)."""
        mlflow = self.mlflow
        self._count += 1  # a new file each time: MLflow keeps an engine per store URI
        self._folder = folder = self.work / f"mlflow-{self._count:03d}-{label}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        return mlflow.MlflowClient(), self.experiment(EXPERIMENT)

    def experiment(self, name: str) -> str:
        """Create the experiment (artifacts inside the store's folder, not ./mlruns); its id."""
        mlflow = self.mlflow
        artifacts = (self._folder / "artifacts").as_uri()
        experiment_id = mlflow.create_experiment(name, artifact_location=artifacts)
        mlflow.set_experiment(experiment_id=experiment_id)
        return str(experiment_id)

    # -- a) ---------------------------------------------------------------------------------------

    def log_metric(self, label: str, n: int) -> tuple[float, float]:
        mlflow = self.mlflow
        client, _ = self.fresh(label)
        data = values(n)
        run = mlflow.start_run()
        log = mlflow.log_metric
        start = time.perf_counter()
        for i in range(n):
            log("loss", data[i], step=i)
        calls = time.perf_counter()
        mlflow.end_run()
        end = time.perf_counter()
        history = client.get_metric_history(run.info.run_id, "loss")
        _expect("MLflow points stored", len(history), n)
        return end - start, calls - start

    # -- b) ---------------------------------------------------------------------------------------

    def batch(self, label: str, n: int, *, shape: str) -> float:
        from mlflow.entities import Metric
        from mlflow.exceptions import MlflowException

        client, experiment = self.fresh(label)
        data = values(n)
        run_id = client.create_run(experiment).info.run_id
        now = int(time.time() * 1000)
        if shape == "keys":
            metrics = [Metric(f"m{i}", data[i], now, 0) for i in range(n)]
        else:
            metrics = [Metric("loss", data[i], now, i) for i in range(n)]
        start = time.perf_counter()
        try:
            client.log_batch(run_id, metrics=metrics)
            self.batch_note = f"MLflow {self.version} took {n:,} metrics in one log_batch call"
        except MlflowException:  # the limit of MAX_METRICS_PER_BATCH (1,000 in many versions)
            start = time.perf_counter()  # a refused call writes nothing; start again
            for first in range(0, n, 1000):
                client.log_batch(run_id, metrics=metrics[first : first + 1000])
            self.batch_note = (
                f"MLflow {self.version} refused {n:,} metrics in one log_batch call: "
                f"sent {-(-n // 1000)} calls of 1,000"
            )
        seconds = time.perf_counter() - start
        if shape == "keys":
            _expect("MLflow metric keys", len(client.get_run(run_id).data.metrics), n)
        else:
            _expect("MLflow points", len(client.get_metric_history(run_id, "loss")), n)
        return seconds

    # -- c) ---------------------------------------------------------------------------------------

    def create_runs(self, data: RunData) -> float:
        """Client API (create_run, one log_batch of params+metrics, set_terminated) per run."""
        from mlflow.entities import Metric, Param

        mlflow = self.mlflow
        if self._search_experiment is None:
            self.fresh("search")
            self._search_experiment = self.experiment(SEARCH_EXPERIMENT)
        client = mlflow.MlflowClient()
        experiment = self._search_experiment
        start = time.perf_counter()
        for params, metrics in zip(data.params, data.metrics, strict=True):
            run_id = client.create_run(experiment).info.run_id
            now = int(time.time() * 1000)
            client.log_batch(
                run_id,
                metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
                params=[Param(k, v) for k, v in params.items()],
            )
            client.set_terminated(run_id)
        return time.perf_counter() - start

    def search_all(self, expected: int) -> float:
        start = time.perf_counter()
        frame = self.mlflow.search_runs(
            experiment_ids=[self._search_experiment], max_results=expected
        )
        seconds = time.perf_counter() - start
        _expect("MLflow rows", len(frame), expected)
        return seconds

    def search_filtered(self, want: list[float]) -> float:
        start = time.perf_counter()
        frame = self.mlflow.search_runs(
            experiment_ids=[self._search_experiment],
            filter_string=FILTER,
            order_by=[ORDER_BY],
            max_results=len(want),
        )
        seconds = time.perf_counter() - start
        _expect("MLflow filtered m2", [round(v, 12) for v in frame["metrics.m2"]], _r(want))
        return seconds

    # -- d) ---------------------------------------------------------------------------------------

    def register(self, label: str, n: int) -> float:
        """n versions of one tiny pyfunc model via mlflow.register_model (model logged untimed)."""
        mlflow = self.mlflow
        self.fresh(label)
        model_uri = self._tiny_model()
        register = mlflow.register_model
        with _quiet():  # register_model prints two lines per version to stderr
            start = time.perf_counter()
            for _ in range(n):
                version = register(model_uri, "tiny")
            seconds = time.perf_counter() - start
        _expect("MLflow last version", int(version.version), n)
        return seconds

    def log_and_register(self, label: str, n: int) -> float:
        """n x ``mlflow.pyfunc.log_model(..., registered_model_name=...)``, each in a run."""
        self.fresh(label)
        with _quiet():
            start = time.perf_counter()
            for _ in range(n):
                info = self._tiny_model(register_as="tiny")
            seconds = time.perf_counter() - start
        _expect("MLflow last version", int(info.registered_model_version), n)
        return seconds

    def _tiny_model(self, register_as: str | None = None) -> Any:
        mlflow = self.mlflow

        class Identity(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
            """The tiny model: returns its input."""

            def predict(
                self, context: Any, model_input: list[float], params: Any = None
            ) -> list[float]:
                return model_input

        level = logging.getLogger("mlflow").level
        logging.getLogger("mlflow").setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings(), mlflow.start_run():
                warnings.simplefilter("ignore")
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=Identity(),
                    pip_requirements=[],
                    registered_model_name=register_as,
                )
        finally:
            logging.getLogger("mlflow").setLevel(level)
        return info if register_as else str(info.model_uri)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        yield


def _r(items: list[float]) -> list[float]:
    return [round(v, 12) for v in items]

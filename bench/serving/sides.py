"""The three servers of the serving benchmark, each serving the same scikit-learn model.

shipyard: ``shipyard serve`` (ONNX Runtime on the parity-checked export). MLflow: ``mlflow
models serve --env-manager local`` on an ``mlflow.sklearn`` model. BentoML 1.4:
``bentoml serve bento_service:RandomForest``. Every server runs pinned to core 0.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
SERVER_CORE = "0"
# One core per server: no thread pool of BLAS or OpenMP oversubscribing it.
_ONE_CORE = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
FEATURES = 20


def train() -> tuple[Any, np.ndarray]:
    """RandomForestClassifier, 100 trees, depth 8, on 20 features of make_classification."""
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_classification(n_samples=5000, n_features=FEATURES, random_state=0)
    model = RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0, n_jobs=1)
    return model.fit(X, y), X


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Side:
    """How to start one server and talk to it."""

    name: str
    argv: list[str]
    port: int
    path: str
    body: str  # one row
    parse: Callable[[Any], list[Any]]  # response JSON -> predicted labels
    health: str
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self, work: Path, *, timeout: float = 120.0) -> None:
        self.log = work / f"{self.name}.log"
        out = self.log.open("wb")
        self.process = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *self.argv],
            env={
                **os.environ,
                **_ONE_CORE,
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # mlflow runs `uvicorn`
                **self.env,
            },
            cwd=self.cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends every worker
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}{self.health}", timeout=2
                ) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer {self.health} within {timeout:.0f} s")

    def predict(self, body: str) -> list[Any]:
        request = urllib.request.Request(
            self.url, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return self.parse(json.loads(response.read()))

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass


def _row(X: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in X[0]]


def shipyard_side(
    work: Path, model: Any, X: np.ndarray, *, batching: bool, log: bool = True
) -> Side:
    """``shipyard serve`` on a fresh project holding the model as ``rf@1``.

    ``log=False`` serves with ``--sample-rate 0`` (no request reaches the prediction log).
    """
    import shipyard

    project = work / "shipyard-project"
    if not (project / "shipyard.toml").exists():
        shutil.rmtree(project, ignore_errors=True)
        project.mkdir(parents=True)
        # `init PATH`, never `-C PATH init`: -C searches upward and would find the checkout.
        subprocess.run(
            [str(BIN / "shipyard"), "init", str(project)], check=True, capture_output=True
        )
        if not (project / "shipyard.toml").exists():
            raise RuntimeError(f"shipyard init did not create a project in {project}")
        with shipyard.connect(project) as sy:
            version = sy.models.log_model(model, "rf", input_example=X[:5], training_sample=X)
            if version.onnx_status != "attached":
                raise RuntimeError(f"ONNX export {version.onnx_status}: {version.onnx_reason}")
    port = free_port()
    names = [f"input_{i}" for i in range(FEATURES)]
    body = json.dumps({"records": [dict(zip(names, _row(X), strict=True))]})
    argv = [str(BIN / "shipyard"), "-C", str(project), "serve", "rf@1", "--host", "127.0.0.1",
            "--port", str(port), "--runtime", "onnx"]  # fmt: skip
    if not batching:
        argv.append("--no-batching")
    if not log:
        argv += ["--sample-rate", "0"]
    return Side(
        name="shipyard" + ("" if batching else "-nobatch") + ("" if log else "-nolog"),
        argv=argv,
        port=port,
        path="/predict",
        body=body,
        parse=lambda r: list(r["predictions"]),
        health="/health",
    )


def mlflow_side(work: Path, model: Any, X: np.ndarray) -> Side:
    """``mlflow models serve --env-manager local`` on an ``mlflow.sklearn`` model folder."""
    folder = work / "mlflow-model"
    env = {
        "MLFLOW_ALLOW_FILE_STORE": "true",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
    }
    if not (folder / "MLmodel").exists():
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.update(env)
        import mlflow.sklearn

        mlflow.sklearn.save_model(
            model,
            str(folder),
            input_example=X[:5],
            skops_trusted_types=["sklearn.tree._tree.Tree"],  # we trained it ourselves
        )
    port = free_port()
    body = json.dumps({"inputs": [_row(X)]})
    argv = [str(BIN / "mlflow"), "models", "serve", "-m", str(folder), "--env-manager", "local",
            "-h", "127.0.0.1", "-p", str(port), "-w", "1"]  # fmt: skip
    return Side(
        name="mlflow",
        argv=argv,
        port=port,
        path="/invocations",
        body=body,
        parse=lambda r: list(r["predictions"]),
        health="/health",
        env=env,
    )


def bentoml_side(work: Path, model: Any, X: np.ndarray) -> Side:
    """``bentoml serve bento_service:RandomForest`` (one worker) on the skops file."""
    import skops.io

    path = work / "bento-model.skops"
    if not path.exists():
        skops.io.dump(model, path)
    port = free_port()
    body = json.dumps({"inputs": [_row(X)]})
    argv = [str(BIN / "bentoml"), "serve", "bento_service:RandomForest", "--host", "127.0.0.1",
            "--port", str(port), "--working-dir", str(HERE)]  # fmt: skip
    return Side(
        name="bentoml",
        argv=argv,
        port=port,
        path="/predict",
        body=body,
        parse=lambda r: list(r),
        health="/readyz",
        env={
            "BENCH_MODEL": str(path),
            "BENTOML_HOME": str(work / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "true",
        },
        cwd=HERE,
    )


def bentoml_onnx_side(work: Path, model: Any, X: np.ndarray) -> Side:
    """BentoML serving the model's ONNX export through ONNX Runtime (shipyard's runtime)."""
    from skl2onnx import to_onnx

    path = work / "bento-model.onnx"
    if not path.exists():
        options = {id(model): {"zipmap": False}}
        path.write_bytes(
            to_onnx(model, X[:1].astype(np.float32), options=options).SerializeToString()
        )
    side = bentoml_side(work, model, X)
    side.name = "bentoml-onnx"
    side.argv = [
        a.replace("bento_service:RandomForest", "bento_service:RandomForestOnnx") for a in side.argv
    ]
    side.env["BENCH_ONNX"] = str(path)
    return side


def floor_side(work: Path, model: Any, X: np.ndarray) -> Side:
    """A raw ASGI app doing only JSON -> ONNX Runtime -> JSON (see floor_app.py)."""
    onnx = bentoml_onnx_side(work, model, X).env["BENCH_ONNX"]
    port = free_port()
    argv = [str(BIN / "uvicorn"), "floor_app:app", "--host", "127.0.0.1", "--port", str(port),
            "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
            "--app-dir", str(HERE)]  # fmt: skip
    return Side(
        name="floor",
        argv=argv,
        port=port,
        path="/predict",
        body=json.dumps({"inputs": [_row(X)]}),
        parse=lambda r: list(r["predictions"]),
        health="/health",
        env={"BENCH_ONNX": onnx},
        cwd=HERE,
    )

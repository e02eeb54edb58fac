from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from typer.testing import Result

import shipyard

Invoke = Callable[..., Result]


@pytest.fixture
def project_dir(cli: Invoke, tmp_path: Path) -> Path:
    """A project with churn@1 (a small random forest, ONNX attached), alias ``live``."""
    assert cli("init").exit_code == 0
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X, y)
    with shipyard.connect(tmp_path, user="alice") as project:
        project.models.log_model(model, "churn", input_example=X[:5], training_sample=X)
        project.registry.set_alias("churn@1", "live")
    return tmp_path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _error_line(result: Result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.mark.parametrize(
    ("reference", "message"),
    [("nope@champion", "nope"), ("churn@champion", "champion"), ("churn@9", "churn@9")],
)
def test_unknown_models_and_aliases_exit_2_before_listening(
    cli: Invoke, project_dir: Path, reference: str, message: str
) -> None:
    line = _error_line(cli("serve", reference, "--port", str(_free_port())), 2)
    assert message in line


def test_onnx_runtime_without_an_export_is_a_clear_error(cli: Invoke, project_dir: Path) -> None:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = RandomForestClassifier(n_estimators=2, random_state=0).fit(X, y)
    with shipyard.connect(project_dir, user="alice") as project:
        project.models.log_model(model, "plain", input_example=X[:5], onnx=False)
    line = _error_line(cli("serve", "plain@1", "--runtime", "onnx"), 2)
    assert "ONNX export unavailable" in line and "--runtime native" in line
    assert "runtime is one of" in _error_line(cli("serve", "plain@1", "--runtime", "tf"), 2)
    assert "--follow watches an alias" in _error_line(cli("serve", "plain@1", "--follow"), 2)
    assert "not a size" in _error_line(cli("serve", "plain@1", "--body-limit", "lots"), 2)


def test_a_corrupt_model_blob_is_refused_naming_the_digest(cli: Invoke, project_dir: Path) -> None:
    with shipyard.connect(project_dir, user="alice") as project:
        for digest in list(project.content.digests()):
            blob = project.content.blobs.root.joinpath(  # type: ignore[attr-defined]
                *project.content.key_of(digest).split("/")
            )
            data = bytearray(blob.read_bytes())
            data[len(data) // 2] ^= 0xFF
            blob.write_bytes(bytes(data))
    line = _error_line(cli("serve", "churn@live", "--port", str(_free_port())), 6)
    assert "is corrupt: its content hashes to" in line and "blake3:" in line


@pytest.fixture
def started(project_dir: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[str], str]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> tuple[subprocess.Popen[str], str]:
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "shipyard", "-C", str(project_dir), "serve", *args,
             "--port", str(port), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(proc.communicate())
            try:
                if httpx.get(f"{url}/ready").status_code == 200:
                    return proc, url
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("the server did not become ready")

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_sigterm_drains_flushes_the_log_and_stops_the_deployment(
    project_dir: Path, started: Callable[..., tuple[subprocess.Popen[str], str]]
) -> None:
    proc, url = started("churn@live")
    X, _ = load_breast_cancer(return_X_y=True, as_frame=True)
    answer = httpx.post(f"{url}/predict", json=X[:4].to_dict(orient="records")).json()
    meta = httpx.get(f"{url}/metadata").json()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, -signal.SIGTERM), err  # uvicorn re-raises after draining
    ready = json.loads(out)
    assert (ready["reference"], ready["runtime"], ready["url"]) == ("churn@1", "onnx", url)
    with shipyard.connect(project_dir, user="alice") as project:
        deployment = project.deployments.get(meta["deployment_id"])
        assert deployment.status == "stopped" and deployment.version == 1
        logged = project.predictions.read("churn", deployment_id=deployment.id)
    assert logged.num_rows == 4
    assert set(logged.column("request_id").to_pylist()) == {answer["request_id"]}


def test_workers_share_one_port_and_each_records_a_deployment(
    project_dir: Path, started: Callable[..., tuple[subprocess.Popen[str], str]]
) -> None:
    proc, url = started("churn@live", "--workers", "2")
    X, _ = load_breast_cancer(return_X_y=True, as_frame=True)
    deployments: set[str] = set()
    rows = X[:1].to_dict(orient="records")

    def ask() -> None:  # a new connection each time: either worker may accept it
        with httpx.Client(base_url=url) as client:
            assert client.post("/predict", json=rows).status_code == 200
            deployments.add(client.get("/metadata").json()["deployment_id"])

    deadline = time.monotonic() + 30
    while len(deployments) < 2 and time.monotonic() < deadline:
        threads = [threading.Thread(target=ask) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert len(deployments) == 2
    with shipyard.connect(project_dir, user="alice") as project:
        assert {project.deployments.get(d).status for d in deployments} == {"stopped"}

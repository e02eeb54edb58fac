from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from typer.testing import Result

import shipyard

Invoke = Callable[..., Result]
FEATURES = 5
# The virtualenv built from a bundle's requirements.txt is kept between runs, keyed by the
# requirements' hash: installing ~50 pinned packages takes about two minutes.
VENV_CACHE = Path(os.environ.get("SHIPYARD_TEST_CACHE", Path.home() / ".cache" / "shipyard-tests"))


@pytest.fixture
def churn(cli: Invoke, tmp_path: Path) -> tuple[Any, np.ndarray]:
    """A project with churn@1 (ONNX attached); returns the model and its data."""
    assert cli("init").exit_code == 0
    X, y = make_classification(n_samples=300, n_features=FEATURES, random_state=0)
    model = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X, y)
    with shipyard.connect(tmp_path, user="alice") as project:
        version = project.models.log_model(model, "churn", input_example=X[:5], training_sample=X)
    assert version.onnx_status == "attached"
    return model, X


def test_package_command_writes_a_bundle_and_reports_it(
    cli: Invoke, churn: Any, tmp_path: Path
) -> None:
    result = cli("package", "churn@1", "-o", "build", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["model"], report["runtime"], report["onnx"]) == ("churn@1", "onnx", "attached")
    assert report["folder"] == str(tmp_path / "build")
    manifest = json.loads((tmp_path / "build" / "manifest.json").read_text())
    assert {f["path"] for f in report["files"]} == {f["path"] for f in manifest["files"]}
    human = cli("package", "churn@latest", "-o", "other")
    assert human.exit_code == 0, human.output
    assert "packaged churn@1" in human.stdout and "serve.py" in human.stdout


def test_package_command_refuses_bad_input_with_exit_2(cli: Invoke, churn: Any) -> None:
    missing = cli("package", "nope@1", "-o", "build")
    assert missing.exit_code == 2
    assert "model 'nope' does not exist" in missing.stderr
    unknown = cli("package", "churn@4", "-o", "build")
    assert unknown.exit_code == 2 and "churn has versions 1 to 1" in unknown.stderr
    bad = cli("package", "../../etc/passwd", "-o", "build")
    assert bad.exit_code == 2 and "invalid reference" in bad.stderr
    assert not Path("build").exists()
    Path("build").mkdir()
    Path("build/notes.txt").write_text("keep")
    busy = cli("package", "churn@1", "-o", "build")
    assert busy.exit_code == 2 and "not empty" in busy.stderr and "--force" in busy.stderr
    assert Path("build/notes.txt").read_text() == "keep"
    forced = cli("package", "churn@1", "-o", "build", "--force", "--json")
    assert forced.exit_code == 0, forced.output
    assert not Path("build/notes.txt").exists()


def test_package_command_has_help(cli: Invoke) -> None:
    result = cli("package", "--help")
    assert result.exit_code == 0 and "--output" in result.stdout and "--force" in result.stdout


# -- the bundle alone, in a virtualenv made from its requirements -----------------------------


def _bundle_venv(requirements: Path) -> Path:
    """A virtualenv holding exactly requirements.txt (not shipyard), built once and cached."""
    lines = [ln for ln in requirements.read_text().splitlines() if ln and not ln.startswith("#")]
    key = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    VENV_CACHE.mkdir(parents=True, exist_ok=True)
    venv = VENV_CACHE / f"bundle-venv-{key}"
    with (VENV_CACHE / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test workers build it once
        if (venv / ".complete").exists():
            return venv
        building = VENV_CACHE / f"{venv.name}.building"
        shutil.rmtree(building, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(building)], check=True)
        python = building / "bin" / "python"
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-r", str(requirements)],
            check=True,
            timeout=1200,
        )
        (building / ".complete").touch()
        building.rename(venv)  # a venv's scripts name their folder; only python -m is used
    return venv


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(url: str, body: Any) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def _serving(
    python: Path, folder: Path, env: dict[str, str], port: int, *args: str
) -> Iterator[str]:
    log = folder.parent / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(python), "serve.py", "--port", str(port), *args],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"serve.py exited with {process.returncode}: {log.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, "serve.py did not answer /health in 60 s"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_bundle_serves_alone_from_a_fresh_virtualenv(
    cli: Invoke,
    churn: tuple[Any, np.ndarray],
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    model, X = churn
    assert cli("package", "churn@1", "-o", "build").exit_code == 0
    # The bundle alone: copied away from the project, which is then deleted.
    alone = tmp_path_factory.mktemp("elsewhere") / "bundle"
    shutil.copytree(tmp_path / "build", alone)
    shutil.rmtree(tmp_path / ".shipyard")
    venv = _bundle_venv(alone / "requirements.txt")
    python = venv / "bin" / "python"
    site = tmp_path_factory.mktemp("site")  # the bundle's own shipyard wheel, not the checkout
    wheel = next((alone / "wheels").glob("shipyard-*.whl"))
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(alone), "PYTHONPATH": str(site)}
    check = subprocess.run(
        [str(python), "-c", "import shipyard; print(shipyard.__file__)"],
        cwd=alone, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert check.stdout.startswith(str(site)), check.stdout
    with _serving(python, alone, env, _free_port()) as url:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            assert json.loads(response.read())["status"] == "ok"
        rows = [{f"input_{i}": float(v) for i, v in enumerate(row)} for row in X[:8]]
        answer = _post(f"{url}/predict", {"records": rows})
        assert answer["predictions"] == model.predict(X[:8]).tolist()
        assert (answer["model"], answer["version"]) == ("churn", 1)
        one = _post(f"{url}/predict", {"records": rows[:1]})
        assert one["predictions"] == model.predict(X[:1]).tolist()
        with pytest.raises(urllib.error.HTTPError) as refused:
            _post(f"{url}/predict", {"records": [{"input_0": "x"}]})
        assert refused.value.code in (400, 422)
        assert "input_" in json.loads(refused.value.read())["error"]
        refused.value.close()
    # The native flavor (scikit-learn through skops) from the same requirements.
    with _serving(python, alone, env, _free_port(), "--runtime", "native") as url:
        answer = _post(f"{url}/predict", {"records": rows})
        assert answer["predictions"] == model.predict(X[:8]).tolist()
        with urllib.request.urlopen(f"{url}/metadata", timeout=5) as response:
            assert json.loads(response.read())["runtime"] == "native"
    # A tampered model file: the bundle is refused before anything listens, naming the file.
    onnx = alone / "model" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    refused_run = subprocess.run(
        [str(python), "serve.py", "--port", str(_free_port())],
        cwd=alone, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused_run.returncode == 2
    assert "model/model.onnx was altered" in refused_run.stderr

"""``shipyard server``: ready in under 2 s, says whether auth is on, loopback only without."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shipyard.app import build
from shipyard.settings import Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    # utime + stime of the process: what "ready in under 2 s" costs, apart from how busy
    # the shared CI machine is.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_USER"] = "alice"
    return env


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An initialised project."""
    subprocess.run([sys.executable, "-m", "shipyard", "init"], cwd=tmp_path, env=_env(), check=True)
    return tmp_path


@pytest.fixture
def start(folder: Path) -> Iterator[object]:
    """Start ``shipyard server`` processes; each is stopped at the end."""
    started: list[subprocess.Popen[str]] = []

    def run(*args: str) -> tuple[subprocess.Popen[str], str, float, float]:
        port = _free_port()
        began = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "shipyard", "server", "--port", str(port), *args],
            cwd=folder,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    wall = time.monotonic() - began
                    return process, url, wall, _cpu_seconds(process.pid)
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() - began < 20
            time.sleep(0.02)

    yield run
    for process in started:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()


def test_without_users_it_serves_loopback_without_auth_and_says_so(start) -> None:  # type: ignore[no-untyped-def]
    process, url, wall, cpu = start()
    assert cpu < 2.0, f"ready after {cpu:.2f} s of CPU ({wall:.2f} s wall)"
    assert httpx.get(f"{url}/api/v1/whoami").json()["user"] == "alice"
    process.terminate()
    output = process.communicate(timeout=10)[0]
    assert "auth OFF" in output and "loopback only" in output


def test_with_users_every_request_needs_a_token(start, folder: Path) -> None:  # type: ignore[no-untyped-def]
    with build(Settings.load(folder, env={}, user="alice")) as project:
        project.users.create("alice", ["admin"])
        _, secret = project.tokens.create("alice")
    process, url, _, _ = start()
    assert httpx.get(f"{url}/api/v1/whoami").status_code == 401
    answer = httpx.get(f"{url}/api/v1/whoami", headers={"authorization": f"Bearer {secret}"})
    assert answer.json()["user"] == "alice"
    process.terminate()
    assert "auth ON" in process.communicate(timeout=10)[0]


def test_a_public_bind_without_auth_is_refused(folder: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shipyard", "server", "--host", "0.0.0.0", "--port", "1"],
        cwd=folder,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 4
    assert "without auth" in done.stderr


def test_several_workers_share_the_port_and_the_store(start, folder: Path) -> None:  # type: ignore[no-untyped-def]
    with build(Settings.load(folder, env={}, user="alice")) as project:
        project.users.create("alice", ["admin"])
        _, secret = project.tokens.create("alice")
    process, url, _, _ = start("--workers", "2")
    headers = {"authorization": f"Bearer {secret}"}
    run_ids = []
    for _ in range(12):  # fresh connections: the kernel spreads them over the workers
        with httpx.Client(base_url=f"{url}/api/v1", headers=headers) as client:
            created = client.post("/runs", json={"experiment": "workers"})
            assert created.status_code == 201, created.text
            run_ids.append(created.json()["id"])
            point = {"key": "m", "value": 1.0, "step": 0, "timestamp": time.time()}
            batch = client.post(f"/runs/{run_ids[-1]}/batch", json={"metrics": [point]})
            assert batch.status_code == 200, batch.text
    with build(Settings.load(folder, env={}, user="alice")) as project:
        page = project.runs.search("workers", max_results=100)
    assert sorted(r.id for r in page) == sorted(run_ids)
    assert all(r.metrics["m"].count == 1 and r.user == "alice" for r in page)
    assert process.poll() is None

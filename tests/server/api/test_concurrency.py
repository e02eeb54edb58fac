"""Many client processes logging through one server: exact counts, no lock errors, no pickle."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import shipyard as sy
from shipyard.client import RemoteProject

from .conftest import Team

_CLIENT = """
import sys
from shipyard.client import RemoteProject
url, token, worker = sys.argv[1], sys.argv[2], int(sys.argv[3])
with RemoteProject(url, token) as remote:
    for r in range(2):
        with remote.runs.start_run("crowd", name=f"w{worker}-{r}", capture=False) as run:
            run.log_params({"worker": worker, "r": r})
            for step in range(2000):
                run.log_metric("loss", step / 2000)
            run.flush()
            for step in range(20):
                run.log_metric("acc", step / 20)
                run.flush()
"""


@pytest.mark.slow
def test_eight_client_processes_log_exact_counts(team: Team, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    clients = [
        subprocess.Popen(
            [sys.executable, "-c", _CLIENT, team.url, team.tokens["editor"], str(worker)],
            cwd=tmp_path,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in range(8)
    ]
    errors = [c.communicate(timeout=300)[1] for c in clients]
    assert [c.returncode for c in clients] == [0] * 8, "\n".join(errors)
    assert not any("locked" in e for e in errors)
    page = team.project.runs.search("crowd", max_results=100)
    assert len(page) == 16
    assert all(r.status == "finished" and r.user == "eddie" for r in page)
    assert {r.metrics["loss"].count for r in page} == {2000}
    assert {r.metrics["acc"].count for r in page} == {20}


_seen: list[str] = []
_watching = threading.Event()


def _hook(event: str, args: tuple[object, ...]) -> None:
    if _watching.is_set() and event == "pickle.find_class":
        _seen.append(f"{args!r}")


sys.addaudithook(_hook)


@sy.task
def double(x: int) -> int:
    print("doubling")
    return 2 * x


@sy.pipeline(name="doubled")
def doubled(x: int) -> int:
    return double(x)  # type: ignore[no-any-return]


def test_the_server_never_loads_a_pickle(team: Team) -> None:
    # The server runs in this process (a thread): the audit hook sees every unpickling.
    from shipyard.server.api.policy import POLICY

    from .test_auth_matrix import _request

    _watching.set()
    try:
        with team.client("admin") as admin:
            for method, template in POLICY:
                _request(admin, method, template)
            run = admin.post("/api/v1/runs", json={"experiment": "p"}).json()
            admin.post(
                f"/api/v1/runs/{run['id']}/batch",
                json={"metrics": [{"key": "m", "value": 1, "step": 0, "timestamp": 1.0}]},
            )
            admin.get(f"/api/v1/runs/{run['id']}/metric-history", params={"key": "m"})
            admin.get("/api/v1/runs", params={"filter": "metrics.m > 0"})
        # A remote driver's records: results and logs (pickles) arrive as bytes by digest.
        with RemoteProject(team.url, team.tokens["editor"], team.project.settings) as remote:
            ran = remote.pipelines.run(doubled, {"x": 4})
        assert ran.status == "succeeded" and team.project.pipelines.tasks(ran.id)
    finally:
        _watching.clear()
    assert _seen == []
    _watching.set()  # the hook does see an unpickling
    try:
        pickle.loads(pickle.dumps(Path("x")))
    finally:
        _watching.clear()
    assert _seen


@pytest.fixture
def metadata_uri(tmp_path: Path) -> str:
    """SQLite: the back end where concurrent writers collide."""
    return f"sqlite:///{tmp_path / 'meta' / 'shipyard.db'}"

"""A real API server (uvicorn, loopback, free port) over a project with users and tokens."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner, Result

from shipyard.app import Shipyard
from shipyard.cli.main import app
from shipyard.server.api import create_app

Invoke = Callable[..., Result]
ROLE_USERS = {"viewer": "vic", "editor": "eddie", "approver": "april", "admin": "alice"}


class ApiServer:
    """create_app(project) under uvicorn in a thread, on a free 127.0.0.1 port."""

    def __init__(self, project: Shipyard, *, auth: bool, **options: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(project, auth=auth, **options)
        config = uvicorn.Config(self.app, lifespan="on", access_log=False, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


@dataclass
class Team:
    """A running server, a token per role and the bad tokens of the auth matrix."""

    server: ApiServer
    project: Shipyard
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self.server.url

    def client(self, role: str | None = "admin") -> httpx.Client:
        """A keep-alive client sending the token of ``role`` (or the named bad token)."""
        headers = {}
        if role is not None:
            headers["authorization"] = f"Bearer {self.tokens[role]}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture
def team(project: Shipyard) -> Iterator[Team]:
    """Users vic (viewer), eddie (editor), april (approver), alice (admin) with tokens, plus
    an expired, a revoked and a malformed token; the server requires tokens."""
    project.users.create("alice", ["admin"])
    for role, user in ROLE_USERS.items():
        if user != "alice":
            project.users.create(user, [role])
    found = Team(ApiServer(project, auth=True), project)
    for role, user in ROLE_USERS.items():
        found.tokens[role] = project.tokens.create(user, "test")[1]
    _, expired = project.tokens.create("alice", "old", expires_in=timedelta(milliseconds=1))
    revoked_token, revoked = project.tokens.create("alice", "gone")
    project.tokens.revoke(revoked_token.id)
    found.tokens["expired"] = expired
    found.tokens["revoked"] = revoked
    found.tokens["malformed"] = "not-a-token"
    found.tokens["unknown"] = "sy_" + "A" * 43
    time.sleep(0.01)  # let the expired token expire
    yield found
    found.server.stop()


@pytest.fixture
def remote_cli(team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """The CLI in an empty folder, pointed at the server with the editor's token."""
    for name in list(os.environ):
        if name.startswith("SHIPYARD_"):
            monkeypatch.delenv(name)
    work = tmp_path / "laptop"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("SHIPYARD_URI", team.url)
    monkeypatch.setenv("SHIPYARD_TOKEN", team.tokens["editor"])
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture
def open_server(project: Shipyard) -> Iterator[ApiServer]:
    """A server without auth (as with no users): loopback only, acting as the project user."""
    server = ApiServer(project, auth=False)
    yield server
    server.stop()

"""A real model server on a loopback port, run by uvicorn in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import uvicorn

from shipyard.app import Shipyard
from shipyard.server.serving.app import ServingApp
from shipyard.server.serving.run import ServeOptions, build_app


class RunningServer:
    """uvicorn with uvloop and httptools, listening on a free 127.0.0.1 port."""

    def __init__(self, project: Shipyard, reference: str, options: ServeOptions) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app: ServingApp = build_app(project, reference, options, url=self.url)
        config = uvicorn.Config(
            self.app,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            access_log=False,
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the model server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Graceful shutdown, as on SIGTERM: drain, flush the log, stop the deployment."""
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


Serve = Callable[..., RunningServer]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start model servers; each is stopped at the end of the test."""
    started: list[RunningServer] = []

    def start(project: Shipyard, reference: str, **options: object) -> RunningServer:
        running = RunningServer(project, reference, ServeOptions(**options))  # type: ignore[arg-type]
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.stop()

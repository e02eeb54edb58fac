"""Server: shipyard's REST API against MLflow's tracking server, both over loopback HTTP.

Each server runs as its own process on a fresh store under ``bench/.work/server``:
``shipyard server`` (one worker, auth on: an admin and a token are created first; SQLite,
durability "full") and ``mlflow server`` with its defaults (SQLite backend store,
``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``). The clients run in this process.

a) 1,000 single ``log_metric`` calls on one run. MLflow: ``MlflowClient.log_metric`` (one
   request each). shipyard: the SDK in remote mode (points batched client-side, the figure
   covers the calls AND ``run.end()``, which sends them), and, to compare round trip for round
   trip, ``log_metric`` + ``run.flush()`` (one request and one commit per point).
b) 10,000 metrics in a batch: shipyard ``run.log_metrics`` of 10,000 keys + ``flush`` (one
   request); MLflow ``log_batch`` of 1,000 metrics x 10 (its per-request limit is 1,000).
c) a run search over 300 runs of 5 params + 5 metrics (beside the runs of a and b, three of
   them with 10,000 metrics): ``metrics.m0 > 0.5 and params.p1 = '3'`` ordered by
   ``metrics.m0 desc``, 100 results; the SDK's call, decoding included, on each side. A
   search takes milliseconds, so the two sides run in turn, ``--search-reps`` times after a
   warm-up call each, and the medians are compared (a and b keep the best of ``--reps``).
Also: the median keep-alive round trip of a health check on each server.

Usage: ``bench/run.py server [--reps N] [--calls N] [--runs N] [--search-reps N] [--keep]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

WORK = Path(__file__).resolve().parent.parent / ".work" / "server"
BIN = Path(sys.executable).parent
FILTER = "metrics.m0 > 0.5 and params.p1 = '3'"


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py server", description=__doc__)
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each workload")
    parser.add_argument("--calls", type=int, default=1000, help="single log_metric calls in (a)")
    parser.add_argument("--runs", type=int, default=300, help="runs created for the search (c)")
    parser.add_argument(
        "--search-reps",
        type=int,
        default=21,
        help="searches on each side in (c), taken in turn; the median is reported",
    )
    parser.add_argument("--keep", action="store_true", help="keep bench/.work/server")
    return parser.parse_args(list(argv))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, process: subprocess.Popen[bytes]) -> float:
    import httpx

    began = time.monotonic()
    while time.monotonic() - began < 120:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.monotonic() - began
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer in 120 s")


class Servers:
    """Both servers, started on fresh stores and stopped at the end."""

    def __init__(self) -> None:
        shutil.rmtree(WORK, ignore_errors=True)
        (WORK / "shipyard").mkdir(parents=True)
        (WORK / "mlflow").mkdir(parents=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        env["SHIPYARD_USER"] = "bench"
        self.env = env
        from shipyard.app import build
        from shipyard.settings import Settings

        with build(Settings.load(WORK / "shipyard", env={}, user="bench")) as project:
            project.users.create("bench", ["admin"])
            self.token = project.tokens.create("bench")[1]
        port = _free_port()
        self.shipyard_url = f"http://127.0.0.1:{port}"
        self.shipyard = subprocess.Popen(
            [str(BIN / "python"), "-m", "shipyard", "server", "--port", str(port)],
            cwd=WORK / "shipyard",
            env=env,
            stdout=subprocess.DEVNULL,
        )
        self.shipyard_ready = _wait(f"{self.shipyard_url}/api/v1/health", self.shipyard)
        port = _free_port()
        self.mlflow_url = f"http://127.0.0.1:{port}"
        db = WORK / "mlflow" / "mlflow.db"
        self.mlflow = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                f"sqlite:///{db}",
                "--default-artifact-root",
                str(WORK / "mlflow" / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=WORK / "mlflow",
            env=env | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.mlflow_ready = _wait(f"{self.mlflow_url}/health", self.mlflow)

    def stop(self) -> None:
        """Stop both servers."""
        for process in (self.shipyard, self.mlflow):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _best(fn: Callable[[], float], reps: int) -> float:
    return min(fn() for _ in range(reps))


def _alternating(
    ours: Callable[[], float], theirs: Callable[[], float], reps: int
) -> tuple[float, float]:
    """The median time of each side, the two run in turn (a warm-up call each first)."""
    ours()
    theirs()
    mine: list[float] = []
    peer: list[float] = []
    for _ in range(reps):
        mine.append(ours())
        peer.append(theirs())
    return statistics.median(mine), statistics.median(peer)


def _round_trip(url: str, headers: dict[str, str]) -> float:
    import httpx

    with httpx.Client(headers=headers) as client:
        times = []
        for _ in range(300):
            start = time.perf_counter()
            client.get(url)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the workloads and print times and ratios."""
    args = parse(sys.argv[1:] if argv is None else argv)
    import mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from shipyard.client import RemoteProject

    servers = Servers()
    rows: list[tuple[str, float, float, str]] = []
    try:
        remote = RemoteProject(servers.shipyard_url, servers.token)
        runs = remote.runs
        mlflow.set_tracking_uri(servers.mlflow_url)
        client = MlflowClient()
        experiment = client.create_experiment("bench")

        def ml_single() -> float:
            run_id = client.create_run(experiment).info.run_id
            start = time.perf_counter()
            for i in range(args.calls):
                client.log_metric(run_id, "m", float(i), step=i)
            client.set_terminated(run_id)
            return time.perf_counter() - start

        def sy_batched() -> float:
            start = time.perf_counter()
            run = runs.start_run("bench", capture=False)
            for i in range(args.calls):
                run.log_metric("m", float(i), step=i)
            run.end()
            return time.perf_counter() - start

        def sy_each() -> float:
            run = runs.start_run("bench", capture=False)
            start = time.perf_counter()
            for i in range(args.calls):
                run.log_metric("m", float(i), step=i)
                run.flush()
            run.end()
            return time.perf_counter() - start

        ml_a = _best(ml_single, args.reps)
        rows.append(
            (
                f"a) {args.calls:,} log_metric, SDK (batched)",
                _best(sy_batched, args.reps),
                ml_a,
                "20x",
            )
        )
        rows.append(
            (
                f"a) {args.calls:,} log_metric, one request each",
                _best(sy_each, args.reps),
                ml_a,
                "20x",
            )
        )

        keys = [f"k{i}" for i in range(10_000)]

        def ml_batch() -> float:
            run_id = client.create_run(experiment).info.run_id
            now = int(time.time() * 1000)
            metrics = [Metric(k, 1.0, now, 0) for k in keys]
            start = time.perf_counter()
            for at in range(0, len(metrics), 1000):
                client.log_batch(run_id, metrics=metrics[at : at + 1000])
            return time.perf_counter() - start

        def sy_batch() -> float:
            run = runs.start_run("bench", capture=False)
            start = time.perf_counter()
            run.log_metrics(dict.fromkeys(keys, 1.0), step=0)
            run.flush()
            spent = time.perf_counter() - start
            run.end()
            return spent

        rows.append(
            (
                "b) 10,000 metrics in a batch",
                _best(sy_batch, args.reps),
                _best(ml_batch, args.reps),
                "5x",
            )
        )

        search_exp = client.create_experiment("search")
        for i in range(args.runs):
            run_id = client.create_run(search_exp).info.run_id
            client.log_batch(
                run_id,
                metrics=[Metric(f"m{j}", ((i * 7 + j) % 10) / 10, 0, 0) for j in range(5)],
                params=[mlflow.entities.Param(f"p{j}", str((i + j) % 5)) for j in range(5)],
            )
            with runs.start_run("search", capture=False) as run:
                run.log_params({f"p{j}": str((i + j) % 5) for j in range(5)})
                run.log_metrics({f"m{j}": ((i * 7 + j) % 10) / 10 for j in range(5)})

        def ml_search() -> float:
            start = time.perf_counter()
            found = client.search_runs(
                [search_exp], FILTER, order_by=["metrics.m0 DESC"], max_results=100
            )
            spent = time.perf_counter() - start
            assert len(found) > 0
            return spent

        def sy_search() -> float:
            start = time.perf_counter()
            found = runs.search("search", FILTER, "metrics.m0 desc", 100)
            spent = time.perf_counter() - start
            assert len(found) > 0
            return spent

        sy_c, ml_c = _alternating(sy_search, ml_search, args.search_reps)
        rows.append((f"c) search {args.runs} runs, filtered+ordered", sy_c, ml_c, "5x"))
        auth = {"authorization": f"Bearer {servers.token}"}
        rt_sy = _round_trip(f"{servers.shipyard_url}/api/v1/health", auth)
        rt_sy_auth = _round_trip(f"{servers.shipyard_url}/api/v1/whoami", auth)
        rt_ml = _round_trip(f"{servers.mlflow_url}/health", {})
        remote.close()
    finally:
        servers.stop()
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)
    ready = f"shipyard {servers.shipyard_ready:.2f} s, mlflow {servers.mlflow_ready:.2f} s"
    print(f"server ready: {ready}")
    print(f"{'workload':46} {'shipyard':>10} {'mlflow':>10} {'ratio':>8} target")
    for name, ours, theirs, target in rows:
        print(f"{name:46} {ours:9.3f}s {theirs:9.3f}s {theirs / ours:7.1f}x {target}")
    print(
        f"keep-alive round trip (median of 300): shipyard /health {rt_sy * 1000:.2f} ms, "
        f"/whoami (token check) {rt_sy_auth * 1000:.2f} ms; mlflow /health {rt_ml * 1000:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

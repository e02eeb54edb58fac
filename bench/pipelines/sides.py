"""The four workloads, written once for shipyard and once for Prefect, and a side for each.

a) a linear chain of N trivial tasks, each taking the previous one's value;
b) fan-out / fan-in: N trivial tasks, then one task summing their values;
c) 10 tasks that sleep 1 s each, on 2 workers (ideal 5 s);
d) a DAG of width x depth tasks: every task of a layer takes two tasks of the layer before,
   then one task joins the last layer (width 100 x depth 100 + 1 = 10,001 tasks).

Every shipyard run goes to a fresh project in a temporary folder (SQLite metadata store, the
default), so every task run is recorded there; the bench checks the count after each run.
Prefect runs serverless: no ``PREFECT_API_URL``, so it starts its temporary local server
(a subprocess on 127.0.0.1) at the first flow, with its SQLite database in a temporary
``PREFECT_HOME``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import shipyard as sy
from shipyard.app import Shipyard, build
from shipyard.settings import Settings

SLEEP_TASKS = 10
SLEEP_SECONDS = 1.0
SLEEP_WORKERS = 2


# -- shipyard --------------------------------------------------------------------------------


@sy.task
def sy_inc(x: int) -> int:
    return x + 1


@sy.task
def sy_one(i: int) -> int:
    return i


@sy.task
def sy_total(*values: int) -> int:
    return sum(values)


@sy.task
def sy_sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@sy.task
def sy_node(*parents: int) -> int:
    return 1 + sum(parents) % 7


@sy.pipeline
def sy_empty() -> int:
    return 0


@sy.pipeline
def sy_chain(n: int = 100) -> int:
    value: Any = 0
    for _ in range(n):
        value = sy_inc(value)
    return value  # type: ignore[no-any-return]


@sy.pipeline
def sy_fan(n: int = 1000) -> int:
    return sy_total(*[sy_one(i) for i in range(n)])  # type: ignore[no-any-return]


@sy.pipeline
def sy_sleepers(n: int = SLEEP_TASKS, seconds: float = SLEEP_SECONDS) -> float:
    return sy_total(*[sy_sleep(seconds) for _ in range(n)])  # type: ignore[no-any-return]


@sy.pipeline
def sy_dag(width: int = 100, depth: int = 100) -> int:
    layer = [sy_node() for _ in range(width)]
    for _ in range(depth - 1):
        layer = [sy_node(layer[i], layer[(i + 1) % width]) for i in range(width)]
    return sy_node(*layer)  # type: ignore[no-any-return]


class ShipyardSide:
    """Runs the workloads through shipyard's pipeline service, each in a fresh project."""

    name = "shipyard"

    def __init__(self, work: Path, executor: str = "local") -> None:
        self.work = work
        self.executor = executor

    def _project(self) -> Shipyard:
        root = Path(tempfile.mkdtemp(prefix="sy-", dir=self.work))
        return build(Settings.load(root, env={}))

    def run(
        self, flow: Any, params: dict[str, Any], tasks: int, expected: Any, **options: Any
    ) -> float:
        """Seconds for one run of ``flow``; checks its result and its recorded task runs."""
        with self._project() as project:
            started = time.perf_counter()
            run = project.pipelines.run(flow, params, executor=self.executor, **options)
            seconds = time.perf_counter() - started
            if run.status != "succeeded" or run.result != expected:
                raise RuntimeError(f"shipyard {flow.name}: {run.status} {run.result!r} {run.error}")
            recorded = len(project.pipelines.tasks(run.id))
            if recorded != tasks:
                raise RuntimeError(
                    f"shipyard {flow.name}: {recorded} task runs recorded, not {tasks}"
                )
        return seconds

    def empty(self) -> float:
        return self.run(sy_empty, {}, 0, 0)

    def chain(self, n: int) -> float:
        return self.run(sy_chain, {"n": n}, n, n)

    def fan(self, n: int) -> float:
        return self.run(sy_fan, {"n": n}, n + 1, n * (n - 1) // 2)

    def sleepers(self) -> float:
        expected = SLEEP_TASKS * SLEEP_SECONDS
        return self.run(sy_sleepers, {}, SLEEP_TASKS + 1, expected, max_workers=SLEEP_WORKERS)

    def dag(self, width: int, depth: int) -> float:
        return self.run(
            sy_dag, {"width": width, "depth": depth}, width * depth + 1, dag_value(width, depth)
        )


def dag_value(width: int, depth: int) -> int:
    """What the DAG computes, in plain Python (to check both tools)."""
    layer = [1] * width
    for _ in range(depth - 1):
        layer = [1 + (layer[i] + layer[(i + 1) % width]) % 7 for i in range(width)]
    return 1 + sum(layer) % 7


# -- Prefect ---------------------------------------------------------------------------------


class PrefectSide:
    """Runs the workloads as Prefect 3 flows, serverless, in this process."""

    name = "Prefect"

    def __init__(self, work: Path) -> None:
        home = work / "prefect-home"
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        os.environ["PREFECT_HOME"] = str(home)
        os.environ.pop("PREFECT_API_URL", None)
        os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"  # no telemetry calls out
        # The default 20 s is too short for the temporary server to start on a busy machine.
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
        # Quieter than the default INFO (one console and API log line per task run): this
        # only makes Prefect faster, so the ratio is, if anything, in Prefect's favour.
        os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
        from prefect import __version__

        self.version = __version__
        self.flows = _prefect_flows()

    def warm_up(self) -> float:
        """The first flow starts Prefect's temporary server: timed, for information."""
        started = time.perf_counter()
        self.flows["empty"]()
        return time.perf_counter() - started

    def _timed(self, name: str, expected: Any, *args: Any) -> float:
        started = time.perf_counter()
        value = self.flows[name](*args)
        seconds = time.perf_counter() - started
        if value != expected:
            raise RuntimeError(f"Prefect {name}: {value!r}, expected {expected!r}")
        return seconds

    def empty(self) -> float:
        return self._timed("empty", 0)

    def chain(self, n: int) -> float:
        return self._timed("chain", n, n)

    def fan(self, n: int) -> float:
        return self._timed("fan", n * (n - 1) // 2, n)

    def sleepers(self) -> float:
        return self._timed("sleepers", SLEEP_TASKS * SLEEP_SECONDS, SLEEP_TASKS, SLEEP_SECONDS)

    def dag(self, width: int, depth: int) -> float:
        return self._timed("dag", dag_value(width, depth), width, depth)

    def recorded(self, flow_name: str) -> int:
        """Task runs Prefect's database holds for the latest run of ``flow_name``."""
        database = Path(os.environ["PREFECT_HOME"]) / "prefect.db"
        with sqlite3.connect(database) as conn:
            found = conn.execute(
                "SELECT count(t.id) FROM flow_run r JOIN flow f ON f.id = r.flow_id "
                "LEFT JOIN task_run t ON t.flow_run_id = r.id WHERE f.name = ? "
                "GROUP BY r.id ORDER BY r.created DESC LIMIT 1",
                (flow_name,),
            ).fetchone()
        return int(found[0]) if found else 0


def _prefect_flows() -> dict[str, Any]:
    """The Prefect flows, defined after PREFECT_HOME is set (importing prefect reads it)."""
    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner

    @task
    def inc(x: int) -> int:
        return x + 1

    @task
    def one(i: int) -> int:
        return i

    @task
    def total(values: list[int]) -> int:
        return sum(values)

    @task
    def nap(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @task
    def node(*parents: int) -> int:
        return 1 + sum(parents) % 7

    @flow
    def empty() -> int:
        return 0

    @flow
    def chain(n: int) -> int:
        value = 0
        for _ in range(n):
            value = inc(value)
        return value

    @flow
    def fan(n: int) -> int:
        return total(one.map(range(n)))  # type: ignore[no-any-return]

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=SLEEP_WORKERS))
    def sleepers(n: int, seconds: float) -> float:
        futures = [nap.submit(seconds) for _ in range(n)]
        return sum(future.result() for future in futures)

    @flow
    def dag(width: int, depth: int) -> int:
        layer = [node.submit() for _ in range(width)]
        for _ in range(depth - 1):
            layer = [node.submit(layer[i], layer[(i + 1) % width]) for i in range(width)]
        return node(*layer)  # type: ignore[no-any-return]

    return {"empty": empty, "chain": chain, "fan": fan, "sleepers": sleepers, "dag": dag}

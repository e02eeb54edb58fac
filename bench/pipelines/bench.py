"""Pipelines: shipyard's pipeline engine against Prefect 3.x, serverless, in one process.

Workloads (see ``sides.py``), each repetition alternating which tool goes first:

a) a linear chain of 100 trivial tasks;
b) fan-out / fan-in: 1,000 trivial tasks and one task summing them;
c) 10 tasks sleeping 1 s on 2 workers (ideal 5 s);
d) a 10,000-task DAG (width 100 x depth 100, two parents a task, plus one join). Prefect
   takes minutes here, so its side runs only with ``--peer-dag``.

shipyard runs each workload in a fresh project (SQLite metadata store in a temporary folder)
with the local executor; every task run is recorded there and counted after the run.
Prefect runs with no server configured: its first flow starts Prefect's temporary local
server (timed once, for information). The per-task overhead of a) is its whole time over its
100 tasks (the run's fixed cost included: an upper bound); that of b), long enough for it,
is its time less an empty pipeline's (flow's), over its 1,001 tasks. A Ray line (shipyard with
``executor="ray"``, a) and c)) runs in a child process when Ray is installed.

Usage: ``bench/run.py pipelines [--reps N] [--peer-reps N] [--dag-reps N] [--peer-dag]
[--no-ray] [--no-peer] [--profile]``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .sides import SLEEP_SECONDS, SLEEP_TASKS, PrefectSide, ShipyardSide

HERE = Path(__file__).resolve().parent
WORK = HERE.parent / ".work" / "pipelines"
CHAIN, FAN, WIDTH, DEPTH = 100, 1000, 100, 100
IDEAL_C = SLEEP_TASKS * SLEEP_SECONDS / 2
Samples = dict[tuple[str, str], list[float]]


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py pipelines",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--reps", type=int, default=5, help="repetitions of shipyard's a), b), c)")
    parser.add_argument(
        "--peer-reps", type=int, default=3, help="repetitions of Prefect's a), b), c)"
    )
    parser.add_argument("--dag-reps", type=int, default=3, help="repetitions of shipyard's d)")
    parser.add_argument(
        "--peer-dag", action="store_true", help="run d) through Prefect too (minutes)"
    )
    parser.add_argument("--no-peer", action="store_true", help="shipyard only")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray line")
    parser.add_argument("--profile", action="store_true", help="then cProfile shipyard's b) and d)")
    return parser.parse_args(list(argv))


def settle(limit: float = 120.0) -> float:
    """Wait until this process and its children (Prefect's server) stop using CPU.

    Prefect's server records a flow's events for seconds after the flow returned; measuring
    the next workload (of either tool) while it does would charge that work to it.
    """
    import psutil

    me = psutil.Process()

    def cpu() -> float:
        total = sum(me.cpu_times()[:2])
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += sum(child.cpu_times()[:2])
        return total

    started = time.perf_counter()
    before = cpu()
    while time.perf_counter() - started < limit:
        time.sleep(0.5)
        now = cpu()
        if now - before < 0.05:  # under 10 % of a core for half a second
            break
        before = now
    return time.perf_counter() - started


def timed(samples: Samples, key: str, side: str, call: Callable[[], float], per: int = 0) -> None:
    waited = settle()
    if waited > 5:
        print(f"  (waited {waited:.1f} s for the CPU to settle)")
    gc.collect()
    try:
        seconds = call()
    except Exception:  # report and keep measuring the rest
        traceback.print_exc()
        return
    samples.setdefault((key, side), []).append(seconds)
    each = f"  ({seconds / per * 1e6:,.0f} µs/task)" if per else ""
    print(f"  {key:<6} {side:<9} {seconds:9.4f} s{each}", flush=True)


def median(samples: Samples, key: str, side: str) -> float | None:
    found = samples.get((key, side))
    return statistics.median(found) if found else None


def per_task(samples: Samples, key: str, side: str, tasks: int, marginal: bool) -> float | None:
    """Median seconds of the workload per task: all in, or less the median empty run."""
    total, empty = median(samples, key, side), median(samples, "empty", side)
    if total is None or (marginal and empty is None):
        return None
    return (total - (empty or 0.0) if marginal else total) / tasks


def ray_line(reps: int) -> dict[str, Any] | None:
    """Run ``ray_side.py`` with an interpreter that has Ray; None when none has it."""
    candidates = [Path(sys.executable), HERE.parents[1] / ".venv" / "bin" / "python"]
    for python in candidates:
        probe = subprocess.run([python, "-c", "import ray"], capture_output=True)
        if probe.returncode == 0:
            done = subprocess.run(
                [python, HERE / "ray_side.py", str(reps), str(CHAIN)],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                return None
            result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
            result["python"] = str(python)
            return result
    return None


def show(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds * 1e3:,.1f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def show_each(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds * 1e6:,.0f} µs/task" if seconds < 1e-3 else f"{seconds * 1e3:,.2f} ms/task"


def render(console: Console, samples: Samples, ray: dict[str, Any] | None, peer: str) -> None:
    table = Table(title=f"pipelines: shipyard (local executor, every task run recorded) vs {peer}")
    for name in ("workload", "shipyard", peer, f"ratio {peer}/shipyard", "goal", "met?"):
        table.add_column(name, justify="left" if name in ("workload", "goal") else "right")

    def ratio(ours: float | None, theirs: float | None) -> str:
        return "—" if not ours or not theirs else f"{theirs / ours:,.1f}x"

    ours, theirs = median(samples, "empty", "shipyard"), median(samples, "empty", peer)
    table.add_row("empty pipeline / flow", show(ours), show(theirs), ratio(ours, theirs), "", "")
    # a) is short: its per-task figure is all in (the run's fixed cost included), because
    # Prefect's ~1 s empty flow varies more than 100 tasks cost; b) is long enough to
    # show the marginal cost (less the empty run).
    for key, label, tasks, marginal in (
        ("a", f"a) chain of {CHAIN}", CHAIN, False),
        ("b", f"b) fan-out/in {FAN:,}", FAN + 1, True),
    ):
        ours, theirs = median(samples, key, "shipyard"), median(samples, key, peer)
        table.add_row(label, show(ours), show(theirs), ratio(ours, theirs), "(total)", "")
        ours_each, theirs_each = (
            per_task(samples, key, "shipyard", tasks, marginal),
            per_task(samples, key, peer, tasks, marginal),
        )
        met = "—"
        if ours_each is not None:
            fast = ours_each <= 200e-6
            far = theirs_each is None or theirs_each / ours_each >= 30
            met = "yes" if fast and far else "NO"
        table.add_row(
            f"   {key}) per task, {'less the empty run' if marginal else 'all in'}",
            show_each(ours_each),
            show_each(theirs_each),
            ratio(ours_each, theirs_each),
            "≤ 200 µs/task, ≥ 30x",
            met,
        )
    ours, theirs = median(samples, "c", "shipyard"), median(samples, "c", peer)
    met = "—" if ours is None else ("yes" if ours <= IDEAL_C * 1.1 else "NO")
    table.add_row(
        f"c) {SLEEP_TASKS} x {SLEEP_SECONDS:g} s on 2 workers",
        show(ours),
        show(theirs),
        ratio(ours, theirs),
        f"≤ {IDEAL_C * 1.1:g} s (ideal {IDEAL_C:g} s)",
        met,
    )
    ours, theirs = median(samples, "d", "shipyard"), median(samples, "d", peer)
    met = "—" if ours is None else ("yes" if ours < 3 else "NO")
    table.add_row(
        f"d) DAG of {WIDTH * DEPTH + 1:,} tasks",
        show(ours),
        show(theirs) if theirs else "not run (--peer-dag)",
        ratio(ours, theirs),
        "< 3 s",
        met,
    )
    if ray is not None:
        chain = statistics.median(ray["a"])
        table.add_row(
            f"Ray: a) chain of {CHAIN}",
            show(chain),
            "",
            "",
            f"({show_each(chain / CHAIN)}, all in)",
            "",
        )
        table.add_row(
            f"Ray: c) {SLEEP_TASKS} x {SLEEP_SECONDS:g} s on 2 CPUs",
            show(statistics.median(ray["c"])),
            "",
            "",
            f"(ideal {IDEAL_C:g} s)",
            "",
        )
    console.print(table)


def profile(ours: ShipyardSide) -> None:
    for label, call in (
        ("b) fan-out 1,000", lambda: ours.fan(FAN)),
        ("d) DAG 10,001", lambda: ours.dag(WIDTH, DEPTH)),
    ):
        profiler = cProfile.Profile()
        profiler.enable()
        call()
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
        print(f"\n--- cProfile of shipyard {label} (main thread only) ---\n{text.getvalue()}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv or [])
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    console = Console() if Console().is_terminal else Console(width=150)
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    )
    ours = ShipyardSide(Path(tempfile.mkdtemp(prefix="shipyard-", dir=WORK)))
    ours.chain(3)  # imports and first-run costs out of the measurements
    peer: PrefectSide | None = None
    peer_name = "Prefect"
    if not args.no_peer:
        peer = PrefectSide(WORK)
        peer_name = f"Prefect {peer.version}"
        peer.name = peer_name
        print(f"Prefect's first flow (starts its temporary server): {peer.warm_up():.2f} s")
    samples: Samples = {}
    sides: list[Any] = [ours] + ([peer] if peer is not None else [])
    for rep in range(max(args.reps, args.peer_reps if peer else 0)):
        print(f"repetition {rep + 1}", flush=True)
        for side in sides if rep % 2 == 0 else sides[::-1]:
            limit = args.reps if side is ours else args.peer_reps
            if rep >= limit:
                continue
            timed(samples, "empty", side.name, side.empty)
            timed(samples, "a", side.name, lambda s=side: s.chain(CHAIN), CHAIN)
            timed(samples, "b", side.name, lambda s=side: s.fan(FAN), FAN + 1)
            timed(samples, "c", side.name, side.sleepers)
    print(f"d) DAG of {WIDTH * DEPTH + 1:,} tasks", flush=True)
    for _ in range(args.dag_reps):
        timed(samples, "d", ours.name, lambda: ours.dag(WIDTH, DEPTH), WIDTH * DEPTH + 1)
    if peer is not None and args.peer_dag:
        timed(samples, "d", peer.name, lambda: peer.dag(WIDTH, DEPTH), WIDTH * DEPTH + 1)
        settle()
        recorded = peer.recorded("dag")
        print(
            f"  Prefect's database holds {recorded:,} of the {WIDTH * DEPTH + 1:,} task runs of d)"
        )
    if peer is not None:
        settle()
        recorded = peer.recorded("fan")
        print(
            f"  Prefect's database holds {recorded:,} of the {FAN + 1:,} task runs of its last b)"
        )
    ray = None
    if not args.no_ray:
        print("Ray line (child process, starts Ray with 2 CPUs)...", flush=True)
        ray = ray_line(3)
        if ray is None:
            print("  Ray is not installed in this interpreter nor in .venv: no Ray line")
        else:
            print(
                f"  ray.init {ray['start']:.1f} s; a) {ray['a']}; c) {ray['c']} ({ray['python']})"
            )
    load = os.getloadavg()[0]
    print(f"load average after: {load:.2f} (2 shared cores: absolute numbers are indicative)")
    render(console, samples, ray, peer_name)
    if args.profile:
        profile(ours)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

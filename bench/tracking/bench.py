"""Tracking: shipyard's runs and metrics against MLflow 3.x on its SQLite store.

Workloads, both tools in one process, alternating which goes first, each repetition in fresh
stores under ``bench/.work/tracking`` (shipyard durability "full", i.e. WAL + fsync per
commit; MLflow's SQLite store with its defaults):

a) 10,000 single ``log_metric`` calls on one run. shipyard buffers points and commits them
   from a background thread, so its figure covers the calls AND the end of the run (which
   commits every point); MLflow commits each call (``mlflow.log_metric``), its figure covers
   the calls and ``mlflow.end_run()``. Also shown: shipyard committing every call
   (``log_metric`` + ``run.flush()``), durability "full" and "normal".
b) one batch of 10,000 metrics: 10,000 keys at step 0 (shipyard ``run.log_metrics`` +
   ``flush``; MLflow ``MlflowClient.log_batch`` with 10,000 ``Metric`` objects, or 10 calls
   of 1,000 if MLflow refuses; the output says which). Also 10,000 steps of one key.
c) create 2,000 runs of 10 params + 10 metrics (timed once, for information), search all of
   them into a pandas DataFrame; create 8,000 more, then a filtered, ordered search
   (``metrics.m0 > 0.5 and params.p1 = '3'``, ``metrics.m2 desc``, 100 results). Searches
   are repeated on the same stores (they only read) and checked against the expected runs.
d) register 100 versions of a tiny model, two ways. Register a logged model: shipyard
   ``sy.models.register_stored`` of the stored files of a model logged beforehand against
   MLflow ``mlflow.register_model`` of a model logged beforehand. Log and register:
   shipyard ``sy.models.log_model`` (stores the model and registers the next version in one
   call) against ``mlflow.pyfunc.log_model(registered_model_name=)``, each in a run.
   A shipyard without ``sy.models`` shows "not yet available".

Usage: ``bench/run.py tracking [--reps N] [--mlflow-log-reps N] [--commit-reps N]
[--register-reps N] [--log-model-reps N] [--calls N] [--runs N] [--more-runs N]
[--versions N] [--only abcd] [--profile | --profile-only] [--keep]``.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import platform
import pstats
import shutil
import subprocess
import time
import traceback
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console

from .report import OURS, PEER, Results, Row, render, render_samples
from .sides import FILTER, ORDER_BY, MlflowSide, RunData, ShipyardSide

WORK = Path(__file__).resolve().parent.parent / ".work" / "tracking"
PROFILES = WORK.parent / "tracking-profile"
Log = Callable[[str], None]


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py tracking",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--reps", type=int, default=5, help="repetitions of the quick workloads")
    parser.add_argument(
        "--mlflow-log-reps",
        type=int,
        default=3,
        help="repetitions of MLflow's a) (about 30 s each at 3 ms/call)",
    )
    parser.add_argument(
        "--commit-reps", type=int, default=2, help="repetitions of shipyard's commit-every-call a)"
    )
    parser.add_argument(
        "--register-reps", type=int, default=3, help="repetitions of d) register a logged model"
    )
    parser.add_argument(
        "--log-model-reps",
        type=int,
        default=3,
        help="repetitions of d) log + register (MLflow: about 7 s each)",
    )
    parser.add_argument("--calls", type=int, default=10_000, help="log_metric calls in a), b)")
    parser.add_argument("--runs", type=int, default=2_000, help="runs for the first search")
    parser.add_argument("--more-runs", type=int, default=8_000, help="runs added before c2)")
    parser.add_argument("--versions", type=int, default=100, help="model versions in d)")
    parser.add_argument(
        "--profile", action="store_true", help="then cProfile shipyard's workloads (top 12)"
    )
    parser.add_argument(
        "--only",
        default="abcd",
        help="the workloads to run, e.g. --only b or --only ac (default: abcd)",
    )
    parser.add_argument(
        "--profile-only", action="store_true", help="only cProfile shipyard (no MLflow, no table)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the stores in bench/.work")
    return parser.parse_args(list(argv))


def revision() -> str:
    """The commit measured (short hash), with "+changes" when src/ differs from it."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown commit"
    return f"commit {head or '?'}{' +changes in src/' if dirty else ''}"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def make_console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=170)


def timed(
    results: Results, key: str, side: str, log: Log, call: Callable[[], Any], per: int = 0
) -> Any:
    """Run one measurement, record it (a tuple records key and key-calls), print it."""
    gc.collect()
    try:
        got = call()
    except Exception as exc:  # record it, keep the other measurements going
        traceback.print_exc()
        results.errors.append(f"{key} {side}: {exc!r}")
        return None
    if got is None:
        return None
    seconds, calls = got if isinstance(got, tuple) else (got, None)
    results.record(key, side, seconds)
    if calls is not None:
        results.record(f"{key}-calls", side, calls)
    each = f"  = {seconds / per * 1e6:,.1f} µs/call" if per else ""
    log(f"  {key:<22} {side:<9} {seconds:9.4f} s{each}")
    return got


def alternate(rep: int, sides: list[Any]) -> list[Any]:
    return sides if rep % 2 == 0 else sides[::-1]


def log_metric_workloads(
    args: argparse.Namespace, ours: ShipyardSide, normal: ShipyardSide, peer: MlflowSide | None
) -> Callable[[Results, Log], None]:
    n = args.calls

    def run(results: Results, log: Log) -> None:
        for rep in range(max(args.reps, args.mlflow_log_reps, args.commit_reps)):
            log(f"a) repetition {rep + 1}")
            for side in alternate(rep, [ours, peer]):
                if side is ours:
                    if rep < args.reps:
                        call = partial(ours.log_metric, f"a{rep}", n, commit_each=False)
                        timed(results, "a", OURS, log, call, n)
                    if rep < args.commit_reps:
                        call = partial(ours.log_metric, f"ac{rep}", n, commit_each=True)
                        timed(results, "a-commit", OURS, log, call, n)
                        call = partial(normal.log_metric, f"an{rep}", n, commit_each=True)
                        timed(results, "a-commit-normal", OURS, log, call, n)
                elif peer is not None and rep < args.mlflow_log_reps:
                    timed(results, "a", PEER, log, partial(peer.log_metric, f"a{rep}", n), n)

    return run


def batch_workloads(
    args: argparse.Namespace, ours: ShipyardSide, peer: MlflowSide | None
) -> Callable[[Results, Log], None]:
    n = args.calls

    def run(results: Results, log: Log) -> None:
        sides: list[Any] = [s for s in (ours, peer) if s is not None]
        for rep in range(args.reps):
            log(f"b) repetition {rep + 1}")
            for side in alternate(rep, sides):
                for shape, key in (("keys", "b"), ("steps", "b-steps")):
                    call = partial(side.batch, f"b{shape}{rep}", n, shape=shape)
                    timed(results, key, side.name, log, call)
        if peer is not None:
            results.note(f"b): {peer.batch_note}")

    return run


def search_workloads(
    args: argparse.Namespace, ours: ShipyardSide, peer: MlflowSide | None
) -> Callable[[Results, Log], None]:
    def run(results: Results, log: Log) -> None:
        data = RunData.make(args.runs + args.more_runs, seed=11)
        first, more = data.slice(0, args.runs), data.slice(args.runs, len(data.params))
        sides: list[Any] = [s for s in (ours, peer) if s is not None]
        log(f"c) creating {args.runs:,} runs (10 params + 10 metrics each) per tool")
        for side in sides:
            timed(results, "c-setup", side.name, log, partial(side.create_runs, first))
        for rep in range(args.reps):
            for side in alternate(rep, sides):
                timed(results, "c-all", side.name, log, partial(side.search_all, args.runs))
        log(f"c) creating {args.more_runs:,} more runs per tool")
        for side in sides[::-1]:
            timed(results, "c-setup-more", side.name, log, partial(side.create_runs, more))
        want = data.expected_top(100)
        for rep in range(args.reps):
            for side in alternate(rep, sides):
                timed(results, "c-filter", side.name, log, partial(side.search_filtered, want))

    return run


def register_workloads(
    args: argparse.Namespace, ours: ShipyardSide, peer: MlflowSide | None
) -> Callable[[Results, Log], None]:
    n = args.versions

    def run(results: Results, log: Log) -> None:
        sides: list[Any] = [s for s in (ours, peer) if s is not None]
        for rep in range(max(args.register_reps, args.log_model_reps)):
            log(f"d) repetition {rep + 1}")
            for side in alternate(rep, sides):
                if side is ours:
                    if rep < args.register_reps:
                        call = partial(ours.register_stored, f"d{rep}", n)
                        got = timed(results, "d", OURS, log, call)
                        if got is None:
                            log("   shipyard has no model registry yet: not yet available")
                    if rep < args.log_model_reps:
                        call = partial(ours.register, f"dl{rep}", n)
                        timed(results, "d-log", OURS, log, call)
                    continue
                if rep < args.register_reps:
                    timed(results, "d", PEER, log, partial(peer.register, f"d{rep}", n))  # type: ignore[union-attr]
                if rep < args.log_model_reps:
                    call = partial(peer.log_and_register, f"dl{rep}", n)  # type: ignore[union-attr]
                    timed(results, "d-log", PEER, log, call)

    return run


def warm_up(ours: ShipyardSide, normal: ShipyardSide, peer: MlflowSide | None) -> None:
    """Import and initialise both tools' lazily loaded parts on tiny workloads first."""
    import pandas  # noqa: F401  - both searches end in a DataFrame: not part of a search's time

    ours.log_metric("warm", 200, commit_each=False)
    ours.log_metric("warm", 200, commit_each=True)
    normal.log_metric("warm", 50, commit_each=True)
    ours.batch("warm", 200, shape="keys")
    if peer is not None:
        peer.log_metric("warm", 50)
        peer.batch("warm", 200, shape="keys")
        peer.register("warm", 2)
        peer.log_and_register("warm", 2)
    ours.register("warm", 2)
    ours.register_stored("warm", 2)


def rows(args: argparse.Namespace, peer_version: str) -> list[Row]:
    n, runs, total = args.calls, args.runs, args.runs + args.more_runs
    return [
        Row(
            "a",
            f"a) {n:,} log_metric, one run (shipyard: buffered, incl. the commit at run end)",
            50,
            per=n,
        ),
        Row(
            "a-calls",
            "   the same, calls only (shipyard: without its final commit)",
            0,
            per=n,
        ),
        Row(
            "a",
            "   shipyard committing every call (log_metric + flush), durability full",
            0,
            per=n,
            ours_key="a-commit",
        ),
        Row(
            "a",
            "   shipyard committing every call, durability normal",
            0,
            per=n,
            ours_key="a-commit-normal",
        ),
        Row("b", f"b) one batch of {n:,} metrics: {n:,} keys at step 0", 10, rate=n),
        Row(
            "b-steps",
            f"   {n:,} steps of one key (shipyard: log_metric x {n:,} + flush)",
            0,
            rate=n,
        ),
        Row("c-setup", f"c) create {runs:,} runs, 10 params + 10 metrics each", 0, rate=runs),
        Row("c-all", f"c1) search all {runs:,} runs into a DataFrame", 10),
        Row("c-setup-more", f"   create {args.more_runs:,} more runs", 0, rate=args.more_runs),
        Row(
            "c-filter",
            f"c2) {FILTER}, {ORDER_BY}, 100 of {total:,} runs -> DataFrame",
            10,
        ),
        Row(
            "d",
            f"d) register {args.versions} versions of a logged tiny model (shipyard: "
            "models.register_stored of its stored files; MLflow: register_model)",
            10,
            per=args.versions,
            ours_missing="not yet available",
        ),
        Row(
            "d-log",
            f"d) log + register {args.versions} versions (shipyard: models.log_model; MLflow: "
            "pyfunc.log_model with registered_model_name)",
            10,
            per=args.versions,
            ours_missing="not yet available",
        ),
    ]


def profile_shipyard(args: argparse.Namespace, ours: ShipyardSide, console: Console) -> None:
    """cProfile shipyard's workloads once each; print the top 12 by own time and cumulative.

    Only the main thread is profiled: in a) buffered, commits made by the run's background
    flusher during the calls are not in the profile (the final one, in ``end()``, is).
    """
    PROFILES.mkdir(parents=True, exist_ok=True)
    n = args.calls
    data = RunData.make(args.runs + args.more_runs, seed=5)
    first, more = data.slice(0, args.runs), data.slice(args.runs, len(data.params))
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("a-buffered", partial(ours.log_metric, "pa", n, commit_each=False)),
        ("a-commit-every-call", partial(ours.log_metric, "pc", n, commit_each=True)),
        ("b-keys", partial(ours.batch, "pb", n, shape="keys")),
        ("c-setup", partial(ours.create_runs, first)),  # a fresh store: the last one closed
        ("c-search-all", partial(ours.search_all, args.runs)),
        ("", partial(ours.create_runs, more)),  # not profiled
        ("c-search-filtered", partial(ours.search_filtered, data.expected_top(100))),
        ("d-register-stored", partial(ours.register_stored, "pr", args.versions)),
        ("d-log-model", partial(ours.register, "pd", args.versions)),
    ]
    for name, call in cases:
        if not name:
            call()
            continue
        profiler = ours.profiler = cProfile.Profile()  # on during the timed part only
        try:
            seconds = call()
        finally:
            ours.profiler = None
        if seconds is None:
            continue
        profiler.dump_stats(PROFILES / f"{name}.prof")
        total = seconds[0] if isinstance(seconds, tuple) else seconds
        for order in ("tottime", "cumulative"):
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).strip_dirs().sort_stats(order).print_stats(12)
            console.print(
                f"[bold]profile of shipyard {name} ({total:.3f} s under cProfile) by {order}[/]",
                highlight=False,
            )
            console.print(_trim(text.getvalue()), highlight=False, markup=False)
    ours.close()
    console.print(f"profiles saved in {PROFILES} (open with `python -m pstats`)")


def _trim(text: str) -> str:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(line for line in lines[max(0, start - 3) :] if line.strip())


def main(argv: Sequence[str]) -> int:
    args = parse(argv)
    console = make_console()
    started = time.perf_counter()

    def log(text: str) -> None:
        console.print(text, highlight=False, markup=False)

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    import shipyard

    ours = ShipyardSide(WORK, "full")
    normal = ShipyardSide(WORK, "normal")
    if args.profile_only:
        import pandas  # noqa: F401

        ours.log_metric("warm", 200, commit_each=True)
        profile_shipyard(args, ours, console)
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)
        return 0
    peer: MlflowSide | None
    try:
        peer = MlflowSide(WORK)
        peer_version = peer.version
    except ImportError as exc:
        console.print(
            f"[red]MLflow is not installed here ({exc}); install bench/requirements.txt into "
            ".venv-bench. Only shipyard's side runs.[/]"
        )
        peer, peer_version = None, "not installed"
    context = (
        f"shipyard {shipyard.__version__} ({revision()}; durability full unless said) vs "
        f"MLflow {peer_version} (SQLite store); Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; "
        f"median of {args.reps} (MLflow a): {args.mlflow_log_reps}; shipyard commit-every-call: "
        f"{args.commit_reps}; d) register: {args.register_reps}, log + register: "
        f"{args.log_model_reps}) repetitions, sides alternating; load average before: {load()}"
    )
    log(context)
    results = Results()
    warm_up(ours, normal, peer)
    log(f"warm-up done in {time.perf_counter() - started:.1f} s")
    for letter, workload in (
        ("a", log_metric_workloads(args, ours, normal, peer)),
        ("b", batch_workloads(args, ours, peer)),
        ("c", search_workloads(args, ours, peer)),
        ("d", register_workloads(args, ours, peer)),
    ):
        if letter in args.only:
            workload(results, log)
    if "a" in args.only:
        results.note(
            "a) shipyard's log_metric only buffers: its figure is timed from the first call to the "
            "end of run.end(), which commits all points (the 'calls only' row leaves that out); "
            "MLflow's is timed from the first mlflow.log_metric to the end of mlflow.end_run()."
        )
    if "c" in args.only:
        results.note(
            "c) the 2,000-run and 10,000-run stores are built once per tool (their creation is "
            "timed once, for information); each search repetition reads the same store and is "
            "checked (row count; the filtered search returns the expected 100 runs in order). "
            "MLflow creates runs with MlflowClient: create_run, one log_batch of params+metrics, "
            "set_terminated; "
            "shipyard with start_run(capture=False), log_params, log_metrics, end."
        )
    if "d" in args.only:
        results.note(
            "d) the tiny model returns its input (a pickled PythonModel on both sides; no ONNX "
            "export, no requirements inference: requirements=[] / pip_requirements=[]). Register: "
            "the model is logged once beforehand, untimed, on both sides; shipyard registers its "
            "stored files (models.register_stored), MLflow its logged model (register_model). "
            "Log + register: shipyard models.log_model stores the model and registers the next "
            "version in one call; MLflow pyfunc.log_model(registered_model_name=), each in a run."
        )
    console.print()
    render_samples(console, results)
    log(context)
    render(
        console,
        results,
        [row for row in rows(args, peer_version) if row.key[0] in args.only],
        f"tracking: shipyard vs MLflow {peer_version}, medians",
    )
    for note in results.notes:
        log(f"note: {note}")
    for error in results.errors:
        console.print(f"[red]error: {error}[/]", highlight=False)
    if args.profile:
        profile_shipyard(args, ours, console)
    ours.close()
    normal.close()
    if not args.keep:
        shutil.rmtree(WORK, ignore_errors=True)
    log(f"load average after: {load()}; total {time.perf_counter() - started:.0f} s")
    return 1 if results.errors else 0

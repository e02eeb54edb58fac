"""Datasets: shipyard's ``datasets.add`` against ``dvc add`` / ``dvc status`` (DVC 3.67).

Workloads, run through both tools in one run on the same generated data:

a) add one ~1 GiB Parquet file;
b) add a folder of 100,000 files of 4 KiB (random, all distinct);
c) re-add both unchanged (shipyard: ``add`` again must answer created=False; DVC: ``dvc add``
   again, and ``dvc status``), median of ``--noop-reps`` runs;
d) the table with a contiguous block of 1 % of its rows changed, and with 1 % rows appended,
   rewritten with the same writer settings: the bytes each tool stores anew.

a), b) and d) run ``--reps`` times, each time in fresh stores, the two tools alternating which
goes first; the table shows medians. shipyard runs with durability "normal"; a) and b) are
also run with "full". shipyard is timed in-process around ``sy.datasets.add`` (imports
warmed up beforehand); DVC is timed around its command, so its figures include the CLI's
start-up, which is printed separately.

Usage: ``bench/run.py datasets [--reps N] [--noop-reps N] [--full-reps N] [--scale F]
[--profile] [--warm] [--keep-data]``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib.util
import io
import os
import pstats
import shutil
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console

from .data import GIB, DataSet, Params, choose_scale, plan, prepare
from .report import Results, render, render_samples, rows
from .sides import DvcSide, Input, ShipyardSide, Side

WORK = Path(__file__).resolve().parent.parent / ".work" / "datasets"
Cold = Callable[[], None]


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py datasets",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--reps", type=int, default=2, help="runs of a), b), d) per tool")
    parser.add_argument("--noop-reps", type=int, default=5, help="runs of each c) workload")
    parser.add_argument(
        "--full-reps", type=int, default=1, help="runs of a), b) with durability full (0: skip)"
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="fraction of the 1 GiB table and 100,000 files (default 1)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="then profile shipyard's a) and b) with cProfile"
    )
    parser.add_argument(
        "--warm", action="store_true", help="do not drop the OS page cache before a), b), d)"
    )
    parser.add_argument(
        "--keep-data", action="store_true", help="keep the generated data for the next run"
    )
    return parser.parse_args(list(argv))


def make_console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=170)


def page_cache(warm: bool) -> tuple[Cold, str]:
    """A function that empties the OS page cache, if this process may; else a no-op."""
    if warm:
        return (lambda: None), "warm cache (--warm)"

    def drop() -> None:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")

    try:
        drop()
    except OSError as exc:
        return (lambda: None), f"warm cache (cannot drop the page cache here: {exc.strerror})"
    return drop, "cold cache (page cache dropped before each a), b), d) call)"


def warm_up(work: Path, data: DataSet) -> None:
    """Import and initialise shipyard's lazily loaded parts on a tiny project first."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = work / "warm-up"
    folder.mkdir(parents=True, exist_ok=True)
    side = ShipyardSide(data, work, "normal")
    side.setup(-1)
    try:
        pq.write_table(pa.table({"x": list(range(1000))}), folder / "t.parquet")
        (folder / "big.bin").write_bytes(os.urandom(17 * 1024 * 1024))  # the chunked path
        side.add_source("warm-up-table", folder / "t.parquet")
        side.add_source("warm-up-file", folder / "big.bin")
    finally:
        side.teardown()
        shutil.rmtree(folder, ignore_errors=True)


def timed_add(
    side: Side, key: str, what: Input, results: Results, cold: Cold, log: Callable[[str], None]
) -> None:
    cold()
    measure = side.add(what)
    results.record(key, side.name, measure)
    log(
        f"  {side.name:<18} {key:<11} {measure.seconds:8.3f} s  stored "
        f"{measure.stored / 2**20:9.1f} MiB {measure.note}"
    )


def no_ops(side: Side, results: Results, reps: int, log: Callable[[str], None]) -> None:
    for key, call in (
        ("c-table", lambda: side.readd("table")),
        ("c-files", lambda: side.readd("files")),
        ("c-status", side.status),
    ):
        for _ in range(reps):
            results.record(key, side.name, call())
        seconds = results.median_seconds(key, side.name) or 0.0
        log(f"  {side.name:<18} {key:<11} {seconds:8.3f} s  (median of {reps})")


def one_rep(
    side: Side,
    rep: int,
    results: Results,
    args: argparse.Namespace,
    cold: Cold,
    log: Callable[[str], None],
    *,
    full_run: bool = True,
) -> None:
    """a) and b) in a fresh store; with ``full_run`` also c) (first rep only) and d)."""
    try:
        side.setup(rep)
        timed_add(side, "a", "table", results, cold, log)
        timed_add(side, "b", "files", results, cold, log)
        if full_run and rep == 0:
            no_ops(side, results, args.noop_reps, log)
        if full_run:
            timed_add(side, "d-changed", "changed", results, cold, log)
            timed_add(side, "d-appended", "appended", results, cold, log)
    except Exception as exc:  # record it, keep the other measurements going
        traceback.print_exc()
        results.errors.append(f"{side.name}, repetition {rep + 1}: {exc!r}")
    finally:
        side.teardown()


def run_all(
    data: DataSet, args: argparse.Namespace, cold: Cold, log: Callable[[str], None]
) -> Results:
    results = Results()
    ours = ShipyardSide(data, WORK, "normal")
    dvc = DvcSide(data, WORK)
    for rep in range(args.reps):
        log(f"repetition {rep + 1} of {args.reps}")
        order: list[Side] = [ours, dvc] if rep % 2 == 0 else [dvc, ours]
        for side in order:
            one_rep(side, rep, results, args, cold, log)
    full = ShipyardSide(data, WORK, "full")
    for rep in range(args.full_reps):
        log(f"durability full, repetition {rep + 1} of {args.full_reps}")
        one_rep(full, rep, results, args, cold, log, full_run=False)
    return results


def profile_shipyard(data: DataSet, console: Console) -> None:
    """cProfile shipyard's a) and b) once each; print the functions that dominate."""
    out_dir = WORK.parent / "datasets-profile"
    out_dir.mkdir(parents=True, exist_ok=True)
    workloads: tuple[tuple[str, Input], ...] = (("a", "table"), ("b", "files"))
    for key, what in workloads:
        side = ShipyardSide(data, WORK, "normal")
        side.setup(99)
        profiler = cProfile.Profile()
        try:
            profiler.enable()
            side.add(what)
            profiler.disable()
        finally:
            side.teardown()
        profiler.dump_stats(out_dir / f"{key}.prof")
        for order in ("cumulative", "tottime"):
            text = io.StringIO()
            stats = pstats.Stats(profiler, stream=text).strip_dirs().sort_stats(order)
            stats.print_stats(18)
            console.print(f"[bold]profile of shipyard {key}) by {order}[/]", highlight=False)
            console.print(_trim_profile(text.getvalue()), highlight=False, markup=False)
    console.print(f"profiles saved in {out_dir} (open with `python -m pstats`)")


def _trim_profile(text: str) -> str:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(line for line in lines[max(0, start - 3) :] if line.strip())


def describe(data: DataSet, params: Params, dvc: DvcSide, cache: str) -> str:
    import pyarrow.parquet as pq

    import shipyard

    meta = pq.ParquetFile(data.table).metadata
    size = data.table_bytes()
    return (
        f"table: {size / GIB:.3f} GiB ({size:,} bytes), {meta.num_rows:,} rows x "
        f"{meta.num_columns} columns in {meta.num_row_groups} row groups; changed block "
        f"{params.changed_rows:,} rows; appended {params.extra_rows:,} rows\n"
        f"files: {params.files:,} x 4 KiB in one folder\n"
        f"shipyard {shipyard.__version__}; {dvc.version()} (dvc CLI start-up, "
        f"`dvc --version`: {_startup(dvc):.2f} s, included in every DVC figure); {cache}; "
        f"{os.cpu_count()} CPUs"
    )


def _startup(dvc: DvcSide) -> float:
    dvc.startup_seconds()  # the first one also compiles/loads; take the next ones
    samples: list[float] = [dvc.startup_seconds() for _ in range(3)]
    return min(samples)


def preflight(console: Console) -> None:
    if importlib.util.find_spec("pyfastcdc") is None:
        console.print(
            "[red]pyfastcdc is not installed in this environment, but shipyard imports it to "
            "store files over 16 MiB (services/objects.py): a) and d) will crash. Reinstall "
            "shipyard here (pip install -e .).[/]"
        )


def main(argv: Sequence[str]) -> int:
    args = parse(argv)
    console = make_console()
    started = time.perf_counter()
    scale, message = choose_scale(WORK, args.scale)
    if message:
        console.print(f"[yellow]{message}[/]")
    preflight(console)

    def log(text: str) -> None:
        console.print(text, highlight=False, markup=False)

    params = plan(scale)
    generating = time.perf_counter()
    data = prepare(WORK / "data", params, log)
    log(f"data ready in {time.perf_counter() - generating:.0f} s")
    cold, cache = page_cache(args.warm)
    dvc = DvcSide(data, WORK)
    context = describe(data, params, dvc, cache)
    log(context)
    warm_up(WORK, data)
    results = run_all(data, args, cold, log)
    table_label = f"{data.table_bytes() / GIB:.2f} GiB"
    title = f"datasets: shipyard vs DVC, medians ({args.reps} runs; c) {args.noop_reps} runs)"
    if message:
        title += f" (SCALED DOWN to {scale:.2f}: indicative only)"
    console.print()
    render_samples(console, results)
    log(context)
    render(console, results, rows(table_label, f"{params.files:,}"), title)
    for note in results.notes():
        log(f"note: {note}")
    for error in results.errors:
        console.print(f"[red]error: {error}[/]", highlight=False)
    if args.profile:
        profile_shipyard(data, console)
    if not args.keep_data:
        with contextlib.suppress(OSError):
            shutil.rmtree(WORK / "data")
    log(f"total {time.perf_counter() - started:.0f} s")
    return 1 if results.errors else 0

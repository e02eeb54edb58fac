"""shipyard's side of the datasets benchmark alone, for iterating without DVC installed.

Times a) add the table, b) add the folder of files, c) re-add both unchanged (median of
``--noop-reps``), d) add the table with 1 % of its rows changed (new bytes, and their share of
the table: DVC stores a changed file whole, so that share is shipyard's bytes over DVC's).
The page cache is warm unless ``--cold`` drops it before a), b) and d) as ``run.py`` does.
``--profile a|b|c|d`` prints a cProfile of that workload instead of timing the rest.

Usage: ``.venv/bin/python bench/datasets/ours.py [--scale F] [--files N] [--durability D]
[--only abcd] [--cold] [--profile a|b|c|d]``.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

# bench/run.py imports an area as the package bench_<area>; this script does the same
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from run import load

load("datasets", Path(__file__).resolve().parent / "bench.py")
from bench_datasets.data import Params, plan, prepare  # noqa: E402 - after load() above
from bench_datasets.sides import ShipyardSide  # noqa: E402 - after load() above

WORK = Path(__file__).resolve().parent.parent / ".work" / "datasets-ours"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the 1 GiB table")
    parser.add_argument("--files", type=int, default=100_000, help="small files in b)")
    parser.add_argument("--durability", default="normal", choices=["normal", "full"])
    parser.add_argument("--noop-reps", type=int, default=5)
    parser.add_argument("--profile", choices=["a", "b", "c", "d"])
    parser.add_argument("--only", default="abcd", help="workloads to run, e.g. 'bc'")
    parser.add_argument(
        "--cold", action="store_true", help="drop the page cache before a), b), d), as run.py does"
    )
    args = parser.parse_args()
    base = plan(args.scale)
    params = Params(base.rows, base.extra_rows, base.changed_rows, args.files)
    data = prepare(WORK / f"data-{args.scale:g}-{args.files}", params, print)
    size = data.table_bytes()
    print(f"table {size / 2**20:.0f} MiB, {params.files:,} files; load {os.getloadavg()}")
    side = ShipyardSide(data, WORK, args.durability)
    side.setup(0)
    try:
        side.add_source("warm-up", data.root / "params.json")
        if args.profile:
            return profile(side, args.profile)
        cold = drop_page_cache if args.cold else (lambda: None)
        if "a" in args.only:
            cold()
            spent = cpu()
            a = side.add("table")
            print(
                f"a) table     {a.seconds:7.3f} s  new {a.reported / 2**20:8.1f} MiB"
                f"  (cpu {cpu() - spent:.2f} s)"
            )
        if "b" in args.only:
            cold()
            spent = cpu()
            b = side.add("files")
            print(
                f"b) files     {b.seconds:7.3f} s  new {b.reported / 2**20:8.1f} MiB"
                f"  (cpu {cpu() - spent:.2f} s)"
            )
        if "c" in args.only:
            for what in ("table", "files"):
                spent = cpu()
                runs = [side.readd(what) for _ in range(args.noop_reps)]
                per_run = (cpu() - spent) / len(runs)
                notes = {r.note for r in runs if r.note}
                median = statistics.median(r.seconds for r in runs)
                print(
                    f"c) {what:<9} {median:7.3f} s  (median of {len(runs)}; cpu {per_run:.2f} s)"
                    f" {notes or ''}"
                )
        if "d" in args.only:
            cold()
            spent = cpu()
            d = side.add("changed")
            share = 100 * (d.reported or 0) / data.changed.stat().st_size
            print(
                f"d) changed   {d.seconds:7.3f} s  new {d.reported / 2**20:8.1f} MiB "
                f"= {share:.2f} % of the file (DVC stores 100 %; cpu {cpu() - spent:.2f} s)"
            )
        print(f"load {os.getloadavg()}")
    finally:
        side.teardown()
        shutil.rmtree(WORK / "shipyard-normal-0", ignore_errors=True)
    return 0


def drop_page_cache() -> None:
    """Empty the OS page cache (root only), so the next add reads from the disk."""
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def cpu() -> float:
    """CPU seconds this process used (all threads): a figure the other load changes less."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def profile(side: ShipyardSide, workload: str) -> int:
    what = {"a": "table", "b": "files", "c": "files", "d": "changed"}[workload]
    if workload == "c":
        side.add("files")
    if workload == "d":
        side.add("table")
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    side.add(what) if workload != "c" else side.readd(what)
    profiler.disable()
    print(f"{workload}) {time.perf_counter() - start:.3f} s under cProfile")
    stats = pstats.Stats(profiler).strip_dirs()
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

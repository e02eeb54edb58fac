"""Monitoring: shipyard's drift report against Evidently 0.7's ``DataDriftPreset``.

Workloads (``data.py``): reference and current tables of 100,000 and 1,000,000 rows x 50
columns (40 numeric, 10 categorical of 20 levels), one seed; in the current table 5 numeric
columns are shifted by 0.5 std and 2 categorical columns change frequencies. Each run is a
fresh child process (``side.py``) that builds the data untimed, in each tool's native form
(Arrow for shipyard, pandas for Evidently), then times the report and reads its own peak RSS
(VmHWM, reset after building the data): the memory the report needs on top of its inputs.
Each child is pinned to one core (the same one for both tools).

- shipyard: ``shipyard.services.drift.compare(reference, current)``, reference sketched in
  the timed part ("cold"); also "warm": the reference's sketch computed beforehand, as for a
  dataset version whose sketch is cached.
- Evidently: ``Report([DataDriftPreset()]).run(current, reference)`` and ``.dict()``.

Both must detect exactly the shifted columns. Then (``--window-rows``) shipyard compares a
Parquet reference with Parquet windows of N and 10 N rows x 5 columns, streamed by DuckDB:
its peak RSS must stay flat; and ``sy.monitoring.run`` over prediction logs holding the same
windows (``project.py``): the whole path must stay flat too.

Usage: ``bench/run.py monitoring [--rows 100000,1000000] [--reps N] [--peer-reps N]
[--window-rows N] [--no-peer] [--keep]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .data import SHIFTED, write_window

HERE = Path(__file__).resolve().parent
WORK = HERE.parent / ".work" / "monitoring"
SEED = 20261123
MIB = 1024 * 1024


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py monitoring",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", default="100000,1000000", help="workload sizes, comma separated")
    parser.add_argument("--reps", type=int, default=3, help="shipyard repetitions per size")
    parser.add_argument(
        "--peer-reps", type=int, default=1, help="Evidently repetitions per size (1M: ~5 min each)"
    )
    parser.add_argument(
        "--window-rows",
        type=int,
        default=2_000_000,
        help="window N for the N vs 10 N memory test (0: skip)",
    )
    parser.add_argument("--no-peer", action="store_true", help="run shipyard only")
    parser.add_argument("--keep", action="store_true", help="keep the window files in bench/.work")
    return parser.parse_args(list(argv))


def child(*args: str) -> dict[str, Any]:
    """Run ``side.py`` in a fresh process; its last stdout line is the JSON result."""
    done = subprocess.run(
        [sys.executable, str(HERE / "side.py"), *args], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"side.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def evidently_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("evidently")
    except Exception:
        return None


def show_seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f} s"


def show_mib(value: float | None) -> str:
    return "—" if value is None else f"{value / MIB:,.0f} MiB"


def main(argv: Sequence[str]) -> int:
    args = parse(argv)
    console = Console() if Console().is_terminal else Console(width=160)

    def log(text: str) -> None:
        console.print(text, highlight=False, markup=False)

    peer = None if args.no_peer else evidently_version()
    if not args.no_peer and peer is None:
        log("Evidently is not installed in this environment: install bench/requirements.txt")
    log(
        f"monitoring: shipyard vs Evidently {peer or '(none)'}; Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
        f"shifted columns: {', '.join(SHIFTED)}"
    )
    sizes = [int(s) for s in args.rows.split(",") if s]
    seconds: dict[tuple[int, str], list[float]] = defaultdict(list)
    peaks: dict[tuple[int, str], list[float]] = defaultdict(list)
    found: dict[tuple[int, str], set[str]] = {}
    scores: dict[tuple[int, str], dict[str, float]] = {}
    expected = set(SHIFTED)
    for rows in sizes:
        sides = ["shipyard", "shipyard-warm"] + (["evidently"] if peer else [])
        for rep in range(max(args.reps, args.peer_reps)):
            order = sides if rep % 2 == 0 else sides[::-1]
            for side in order:
                if side == "evidently" and rep >= args.peer_reps:
                    continue
                if side != "evidently" and rep >= args.reps:
                    continue
                got = child(side, str(rows), str(SEED))
                key = (rows, side)
                seconds[key].append(got["seconds"])
                peaks[key].append(got["peak_rss"] - got["baseline_rss"])
                found[key] = set(got["drifted"])
                scores[key] = got["scores"]
                log(
                    f"  {rows:>9,} rows  {side:<14} {got['seconds']:8.2f} s  peak +"
                    f"{(got['peak_rss'] - got['baseline_rss']) / MIB:6.0f} MiB (inputs "
                    f"{got['baseline_rss'] / MIB:,.0f} MiB)  detected: "
                    + ", ".join(sorted(got["drifted"]))
                )
        if (rows, "evidently") in scores and (rows, "shipyard") in scores:
            ours, theirs = scores[rows, "shipyard"], scores[rows, "evidently"]
            diffs = {
                c: abs(ours[c] - theirs[c]) for c in ours if c in theirs and ours[c] is not None
            }
            worst = max(diffs, key=lambda c: diffs[c]) if diffs else None
            if worst is not None:
                log(
                    f"  scores vs Evidently at {rows:,} rows: largest difference "
                    f"{diffs[worst]:.2e} "
                    f"({worst}: shipyard {ours[worst]:.6g}, Evidently {theirs[worst]:.6g})"
                )
    window: dict[int, dict[str, Any]] = {}
    monitored: dict[int, dict[str, Any]] = {}
    if args.window_rows:
        window = window_test(args.window_rows, log)
        monitored = monitor_test(args.window_rows, log)
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)
    table = Table(title="monitoring: shipyard vs Evidently DataDriftPreset (medians)")
    for name in ("workload", "shipyard", "Evidently", "ratio", "goal", "met?"):
        table.add_column(name, justify="left" if name in ("workload", "goal") else "right")
    for rows in sizes:
        ours = seconds.get((rows, "shipyard"))
        warm = seconds.get((rows, "shipyard-warm"))
        theirs = seconds.get((rows, "evidently"))
        a = statistics.median(ours) if ours else None
        w = statistics.median(warm) if warm else None
        b = statistics.median(theirs) if theirs else None
        ratio = b / a if a and b else None
        label = f"{rows:,} x 50 drift report"
        table.add_row(
            label + " (cold)",
            show_seconds(a),
            show_seconds(b),
            "—" if ratio is None else f"{ratio:,.1f}x",
            "≥ 25x",
            "—" if ratio is None else ("yes" if ratio >= 25 else "NO"),
        )
        table.add_row(
            label + " (reference sketch cached)",
            show_seconds(w),
            show_seconds(b),
            "—" if not (w and b) else f"{b / w:,.1f}x",
            "(information)",
            "",
        )
        if rows >= 1_000_000:
            table.add_row(
                f"{rows:,} x 50 under 10 s on one core",
                show_seconds(a),
                "",
                "",
                "< 10 s",
                "—" if a is None else ("yes" if a < 10 else "NO"),
            )
        pa_, pb = peaks.get((rows, "shipyard")), peaks.get((rows, "evidently"))
        ma = statistics.median(pa_) if pa_ else None
        mb = statistics.median(pb) if pb else None
        table.add_row(
            f"{rows:,} x 50 peak RSS above inputs",
            show_mib(ma),
            show_mib(mb),
            "—" if not (ma and mb) else f"{mb / ma:,.1f}x",
            "(information)",
            "",
        )
        for side in ("shipyard", "evidently"):
            if (rows, side) in found:
                same = found[rows, side] == expected
                table.add_row(
                    f"{rows:,}: {side} detects exactly the 7 shifted columns",
                    ", ".join(sorted(found[rows, side] - expected)) or "",
                    "",
                    "",
                    "same set",
                    "yes" if same else f"NO (missed {sorted(expected - found[rows, side])})",
                )
    if window:
        small, large = window[args.window_rows], window[args.window_rows * 10]
        growth = large["peak_rss"] / small["peak_rss"]
        table.add_row(
            f"window {args.window_rows:,} → {args.window_rows * 10:,} rows x 5: peak RSS",
            f"{show_mib(small['peak_rss'])} → {show_mib(large['peak_rss'])}",
            "",
            f"{growth:.2f}x",
            "≤ 1.5x (bounded)",
            "yes" if growth <= 1.5 else "NO",
        )
        table.add_row(
            f"window {args.window_rows * 10:,} rows x 5: time",
            show_seconds(large["seconds"]),
            "",
            "",
            "(information)",
            "",
        )
    if monitored:
        small, large = monitored[args.window_rows], monitored[args.window_rows * 10]
        growth = large["peak_rss"] / small["peak_rss"]
        table.add_row(
            f"monitor run, log of {args.window_rows:,} → {args.window_rows * 10:,} rows: peak RSS",
            f"{show_mib(small['peak_rss'])} → {show_mib(large['peak_rss'])}",
            "",
            f"{growth:.2f}x",
            "≤ 1.5x (bounded)",
            "yes" if growth <= 1.5 else "NO",
        )
        table.add_row(
            f"monitor run, log of {args.window_rows * 10:,} rows: time (rows judged)",
            f"{show_seconds(large['seconds'])} ({large['rows']:,})",
            "",
            "",
            "(information)",
            "",
        )
    console.print(table)
    return 0


def window_test(rows: int, log: Any) -> dict[int, dict[str, Any]]:
    """Peak RSS of shipyard comparing Parquet windows of ``rows`` and ``10 * rows`` rows."""
    results: dict[int, dict[str, Any]] = {}
    start = time.perf_counter()
    write_window(WORK / "reference", 1_000_000, SEED, current=False)
    for size in (rows, rows * 10):
        folder = WORK / f"window-{size}"
        if not folder.exists():
            write_window(folder, size, SEED + size, current=True)
    log(f"window files written in {time.perf_counter() - start:.0f} s")
    for size in (rows, rows * 10):
        got = child("window", str(WORK / "reference"), str(WORK / f"window-{size}"))
        results[size] = got
        log(
            f"  window {size:>11,} rows x 5: {got['seconds']:7.2f} s, peak RSS "
            f"{got['peak_rss'] / MIB:,.0f} MiB, detected {', '.join(got['drifted'])}"
        )
    return results


def monitor_test(rows: int, log: Any) -> dict[int, dict[str, Any]]:
    """Peak RSS of ``sy.monitoring.run`` over prediction logs of ``rows`` and ``10 * rows``."""
    from .project import build

    results: dict[int, dict[str, Any]] = {}
    reference = next(iter(sorted((WORK / "reference").glob("*.parquet"))))
    for size in (rows, rows * 10):
        start = time.perf_counter()
        project = WORK / f"project-{size}"
        build(project, reference, WORK / f"window-{size}")
        log(f"  project with a {size:,}-row log ready in {time.perf_counter() - start:.0f} s")
        got = child("monitor", str(project))
        results[size] = got
        log(
            f"  monitor run {size:>11,} rows x 5: {got['seconds']:7.2f} s, peak RSS "
            f"{got['peak_rss'] / MIB:,.0f} MiB, status {got['status']}, "
            f"detected {', '.join(got['drifted'])}"
        )
    return results

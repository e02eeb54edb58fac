"""Serving: shipyard against MLflow ``models serve`` and BentoML 1.4, one model, one core each.

The model: RandomForestClassifier (100 trees, depth 8) on 20 features of make_classification.
shipyard serves its ONNX export through ``shipyard serve``; MLflow serves the
``mlflow.sklearn`` model with ``--env-manager local`` and one worker; BentoML serves it
from ``bento_service.py`` with one worker. Every server is pinned to core 0 (``taskset -c
0``), the load generator to core 1: wrk, one thread, keep-alive, a Lua POST of one row, at
concurrency 1, 16 and 64. Before the load, each server's answer is checked against the
model's own prediction. Repetitions alternate the order of the servers; the median is shown.
After each shipyard run the server's prediction log counters are printed (rows written,
dropped, queued against the requests answered): every request is logged, not only served.

For information, BentoML also serves the same ONNX export through ONNX Runtime
(``bentoml-onnx``): the ratio against it is the HTTP stack alone, while the goal is measured
against the peers as they serve a scikit-learn model by default.

The ``floor`` side is a raw ASGI app doing only JSON -> ONNX Runtime -> JSON under the same
uvicorn: what this (shared, noisy) machine allows right now; shipyard / floor is shipyard's
own overhead.

Then an open-loop run (asyncio client, requests due at a fixed rate, latency measured from
when each was due) against shipyard with micro-batching on and off.

Usage: ``bench/run.py serving [--seconds S] [--reps N] [--concurrency 1,16,64]
[--rates 1000,3000] [--only shipyard,mlflow,bentoml,bentoml-onnx,floor,shipyard-nolog]
[--no-open-loop]``.
"""

from __future__ import annotations

import argparse
import re
import signal
import statistics
import sys
import time
import traceback
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .load import LoadResult, run_open_loop, run_wrk, wrk_script
from .sides import (
    Side,
    bentoml_onnx_side,
    bentoml_side,
    floor_side,
    mlflow_side,
    shipyard_side,
    train,
)

WORK = Path(__file__).resolve().parent.parent / ".work" / "serving"
PEERS = ("mlflow", "bentoml")
GOAL_RATIO = 3.0
GOAL_RPS = 10_000.0
GOAL_P99_MS = 5.0
_LOG_LINE = re.compile(  # the prediction log's lines of a shipyard server's /metrics
    r'^shipyard_prediction_log_(?:rows_total\{outcome="(\w+)"\}|(queued)_rows) (\S+)$', re.MULTILINE
)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py serving",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each wrk run")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (median reported)")
    parser.add_argument("--concurrency", default="1,16,64", help="wrk connections, comma list")
    parser.add_argument("--rates", default="1000,3000", help="open-loop rates (req/s)")
    parser.add_argument(
        "--only",
        default="shipyard,mlflow,bentoml,bentoml-onnx,floor,shipyard-nolog",
        help="sides to run (bentoml-onnx: BentoML on the ONNX export; floor: the least an "
        "HTTP predict can cost here; shipyard-nolog: --sample-rate 0; for information)",
    )
    parser.add_argument("--no-open-loop", action="store_true", help="skip the open-loop runs")
    return parser.parse_args(list(argv))


def _median(results: list[LoadResult]) -> LoadResult:
    return LoadResult(
        rps=statistics.median(r.rps for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        requests=sum(r.requests for r in results),
        errors=sum(r.errors for r in results),
    )


def _check(side: Side, expected: Any) -> None:
    got = side.predict(side.body)
    if [int(v) for v in np.asarray(got).reshape(-1)] != [int(v) for v in expected]:
        raise RuntimeError(f"{side.name} predicts {got}, the model {list(expected)}")


def _run_side(
    make: Callable[[], Side], expected: Any, levels: list[int], seconds: float
) -> dict[int, LoadResult]:
    side = make()
    WORK.mkdir(parents=True, exist_ok=True)
    side.start(WORK)
    try:
        _check(side, expected)
        script = wrk_script(WORK, side.body)
        served = 1 + run_wrk(side.url, script, connections=16, seconds=2).requests  # warm up
        found = {}
        for level in levels:
            found[level] = run_wrk(side.url, script, connections=level, seconds=seconds)
            r = found[level]
            served += r.requests
            print(
                f"  {side.name:<10} c={level:<3} {r.rps:>9,.0f} req/s  p50 {r.p50_ms:6.2f} ms  "
                f"p99 {r.p99_ms:6.2f} ms  errors {r.errors}",
                flush=True,
            )
        if side.name.startswith("shipyard"):
            _report_log(side, served)
        return found
    finally:
        side.stop()


def _report_log(side: Side, served: int, *, timeout: float = 15.0) -> None:
    """Print what the server's prediction log did with the requests it answered.

    Waits for the queue to empty (batches are written within ``max_delay``), then reads
    ``shipyard_prediction_log_rows_total`` from ``/metrics``: with every request logged,
    written must equal served, and a drop means the log fell behind under this load.
    """
    url = f"http://127.0.0.1:{side.port}/metrics"
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(url, timeout=10) as answer:
            text = answer.read().decode()
        counts = {
            (outcome or queued): int(float(n)) for outcome, queued, n in _LOG_LINE.findall(text)
        }
        if counts.get("queued", 0) == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    print(
        f"  {side.name:<10} prediction log: {served:,} requests answered, "
        f"{counts.get('written', 0):,} rows written, {counts.get('dropped', 0):,} dropped, "
        f"{counts.get('sampled_out', 0):,} sampled out, {counts.get('queued', 0):,} still queued",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse(argv or [])
    # A SIGTERM runs the finally blocks that stop the servers, like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    levels = [int(c) for c in args.concurrency.split(",")]
    rates = [float(r) for r in args.rates.split(",")]
    chosen = [s for s in args.only.split(",") if s]
    WORK.mkdir(parents=True, exist_ok=True)
    model, X = train()
    expected = model.predict(X[:1])
    makers: dict[str, Callable[[], Side]] = {
        "shipyard": lambda: shipyard_side(WORK, model, X, batching=True),
        "mlflow": lambda: mlflow_side(WORK, model, X),
        "bentoml": lambda: bentoml_side(WORK, model, X),
        "bentoml-onnx": lambda: bentoml_onnx_side(WORK, model, X),
        "floor": lambda: floor_side(WORK, model, X),
        "shipyard-nolog": lambda: shipyard_side(WORK, model, X, batching=True, log=False),
    }
    runs: dict[str, dict[int, list[LoadResult]]] = {s: {c: [] for c in levels} for s in chosen}
    failed: dict[str, str] = {}
    for rep in range(args.reps):
        order = chosen[rep % len(chosen) :] + chosen[: rep % len(chosen)]
        print(f"repetition {rep + 1}/{args.reps}: {', '.join(order)}", flush=True)
        for name in order:
            if name in failed:
                continue
            try:
                found = _run_side(makers[name], expected, levels, args.seconds)
            except Exception as exc:
                traceback.print_exc()
                failed[name] = str(exc).splitlines()[0][:120]
                continue
            for level, result in found.items():
                runs[name][level].append(result)
    medians = {
        s: {c: _median(r) for c, r in by.items() if r} for s, by in runs.items() if s not in failed
    }
    open_loop = (
        {}
        if args.no_open_loop or "shipyard" in failed
        else _open_loop(model, X, rates, expected, args)
    )
    _report(medians, failed, levels, open_loop)
    return 0


def _open_loop(
    model: Any, X: np.ndarray, rates: list[float], expected: Any, args: argparse.Namespace
) -> dict[tuple[str, float], LoadResult]:
    found: dict[tuple[str, float], LoadResult] = {}
    for batching in (True, False):
        side = shipyard_side(WORK, model, X, batching=batching)
        side.start(WORK)
        try:
            _check(side, expected)
            body = WORK / "body.json"
            body.write_text(side.body)
            for rate in rates:
                r = run_open_loop("127.0.0.1", side.port, side.path, body, rate=rate,
                                  seconds=args.seconds)  # fmt: skip
                found[(side.name, rate)] = r
                print(
                    f"  open loop {side.name:<17} {rate:>6,.0f}/s: got {r.rps:>7,.0f} req/s  "
                    f"p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:7.2f} ms  errors {r.errors}",
                    flush=True,
                )
        finally:
            side.stop()
    return found


def _report(
    medians: dict[str, dict[int, LoadResult]],
    failed: dict[str, str],
    levels: list[int],
    open_loop: dict[tuple[str, float], LoadResult],
) -> None:
    print("\nmedians (req/s, p50 ms, p99 ms):")
    for name, by in medians.items():
        cells = "  ".join(
            f"c={c}: {r.rps:,.0f} {r.p50_ms:.2f}/{r.p99_ms:.2f}" for c, r in sorted(by.items())
        )
        print(f"  {name:<10} {cells}")
    for name, why in failed.items():
        print(f"  {name:<10} FAILED: {why}")
    rows: list[tuple[str, str, str, str, str, str]] = []
    ours = medians.get("shipyard", {})
    for level in levels:
        peers = {p: medians[p][level] for p in PEERS if p in medians and level in medians[p]}
        mine = ours.get(level)
        if not peers or mine is None:
            rows.append((f"predict c={level}", _fmt(mine), "n/a", "n/a", "≥3x, p99 ≤ peer", "n/a"))
            continue
        best_name, best = max(peers.items(), key=lambda kv: kv[1].rps)
        ratio = mine.rps / best.rps
        met = ratio >= GOAL_RATIO and mine.p99_ms <= best.p99_ms
        rows.append(
            (
                f"predict c={level}",
                _fmt(mine),
                f"{best_name} {_fmt(best)}",
                f"{ratio:.1f}x",
                "≥3x, p99 ≤ peer",
                "yes" if met else "NO",
            )
        )
    same = medians.get("bentoml-onnx", {})
    for level in levels:
        if level in same and level in ours:
            ratio = ours[level].rps / same[level].rps
            rows.append(
                (
                    f"same runtime c={level}",
                    _fmt(ours[level]),
                    f"bentoml-onnx {_fmt(same[level])}",
                    f"{ratio:.1f}x",
                    "(info: HTTP stack only)",
                    "-",
                )
            )
    floor = medians.get("floor", {})
    for level in levels:
        if level in floor and level in ours:
            rows.append(
                (
                    f"floor c={level}",
                    _fmt(ours[level]),
                    f"raw ASGI+ONNX {_fmt(floor[level])}",
                    f"{ours[level].rps / floor[level].rps:.2f}x",
                    "(info: machine ceiling now)",
                    "-",
                )
            )
    quiet = medians.get("shipyard-nolog", {})
    for level in levels:
        if level in quiet and level in ours:
            rows.append(
                (
                    f"no prediction log c={level}",
                    _fmt(ours[level]),
                    f"shipyard-nolog {_fmt(quiet[level])}",
                    f"{ours[level].rps / quiet[level].rps:.2f}x",
                    "(info: --sample-rate 0)",
                    "-",
                )
            )
    if 16 in ours:
        r = ours[16]
        met = r.rps >= GOAL_RPS and r.p99_ms < GOAL_P99_MS
        rows.append(
            ("per core c=16", _fmt(r), "-", "-", "≥10k req/s, p99<5ms", "yes" if met else "NO")
        )
    for (name, rate), r in sorted(open_loop.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        rows.append((f"open loop {rate:,.0f}/s {name}", _fmt(r), "-", "-", "(info)", "-"))
    header = ("workload", "shipyard", "peer (best)", "ratio", "goal", "met?")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(6)]
    print()
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))


def _fmt(r: LoadResult | None) -> str:
    if r is None:
        return "n/a"
    return f"{r.rps:,.0f}/s p50 {r.p50_ms:.2f} p99 {r.p99_ms:.2f} ms" + (
        f" ({r.errors} err)" if r.errors else ""
    )

"""One side of the monitoring benchmark, run in a child process: ``side.py SIDE ROWS SEED``.

The child builds the reference and current tables (same seed: the same data for both tools,
each in its native form: Arrow for shipyard, pandas for Evidently; building them is not
timed), resets its peak-RSS counter, runs the drift report, and prints one JSON line: wall
seconds, the peak RSS during the run and before it, and the per-column verdicts and scores.

``window`` mode (shipyard only) compares a Parquet reference with Parquet window files
(``side.py window REF_DIR CURRENT_DIR``): memory must stay bounded however large the window.
``monitor`` mode (``side.py monitor PROJECT``) runs ``sy.monitoring.run`` over a project
whose prediction log holds such a window (``project.py``): the whole path, from the log's
batch index to the stored report.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from data import CATEGORICAL_LEVELS, frames


def _status(key: str) -> int:
    """A /proc/self/status figure in bytes (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> int:
    gc.collect()
    with contextlib.suppress(OSError):  # "5" resets the peak RSS (VmHWM) (Linux >= 4.0)
        Path("/proc/self/clear_refs").write_text("5")
    return _status("VmRSS")


def _shipyard(reference: Any, current: Any) -> dict[str, Any]:
    from shipyard.services.drift import compare

    start = time.perf_counter()
    report = compare(reference, current)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "drifted": list(report.drifted),
        "scores": {c.name: c.statistic for c in report.columns},
        "methods": {c.name: c.method for c in report.columns},
        "dataset_drift": report.dataset_drift,
    }


def _warm(reference: Any, current: Any) -> dict[str, Any]:
    """shipyard with the reference sketched beforehand (a dataset version's cached sketch)."""
    from shipyard.services.drift_sketch import sketch_table

    return _shipyard(sketch_table(reference), current)


def _evidently(reference: Any, current: Any) -> dict[str, Any]:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    start = time.perf_counter()
    result = Report([DataDriftPreset()]).run(current, reference)
    data = result.dict()
    seconds = time.perf_counter() - start
    scores: dict[str, float] = {}
    drifted: list[str] = []
    methods: dict[str, str] = {}
    for metric in data["metrics"]:
        config = metric["config"]
        if not config["type"].endswith("ValueDrift"):
            continue
        column, method, value = config["column"], str(config["method"]), metric["value"]
        scores[column], methods[column] = value, method
        p_value = "p_value" in method.lower()
        if (value <= config["threshold"]) if p_value else (value >= config["threshold"]):
            drifted.append(column)
    return {"seconds": seconds, "drifted": drifted, "scores": scores, "methods": methods}


def main(argv: list[str]) -> int:
    side = argv[0]
    if hasattr(os, "sched_setaffinity"):  # one core for either tool: "under 10 s on one core"
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    if side == "monitor":  # `sy.monitoring.run` over a project's prediction log
        from project import monitor

        baseline = _reset_peak()
        start = time.perf_counter()
        out = monitor(Path(argv[1]))
        out["seconds"] = time.perf_counter() - start
    elif side == "window":
        from shipyard.services.drift_sketch import sketch_table

        reference = sketch_table(Path(argv[1]))
        baseline = _reset_peak()
        out = _shipyard(reference, Path(argv[2]))
    else:
        rows, seed = int(argv[1]), int(argv[2])
        pandas = side == "evidently"
        reference, current = frames(rows, seed, pandas=pandas)
        baseline = _reset_peak()
        run = {"shipyard": _shipyard, "shipyard-warm": _warm, "evidently": _evidently}[side]
        out = run(reference, current)
    out["peak_rss"] = _status("VmHWM")
    out["baseline_rss"] = baseline
    out["levels"] = CATEGORICAL_LEVELS
    print(json.dumps(out, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

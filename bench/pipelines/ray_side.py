"""The Ray line of the pipelines bench: a) and c) through shipyard with ``executor="ray"``.

Run as a script (``python bench/pipelines/ray_side.py REPS``) by ``bench.py``, with an
interpreter that has Ray (the bench virtualenv may not: then the project's ``.venv``), so
that Ray's start (seconds, about a gigabyte) stays out of the bench process. Prints one JSON
object: the seconds of each repetition of a) and c), and Ray's start.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sides import SLEEP_WORKERS, ShipyardSide

from shipyard.executors.ray import connect


def main(argv: list[str]) -> int:
    reps = int(argv[0]) if argv else 3
    chain = int(argv[1]) if len(argv) > 1 else 100
    started = time.perf_counter()
    connect(num_cpus=SLEEP_WORKERS)
    out: dict[str, list[float] | float] = {"start": time.perf_counter() - started}
    with tempfile.TemporaryDirectory(prefix="sy-ray-bench-") as work:
        side = ShipyardSide(Path(work), executor="ray")
        side.chain(2)  # warm the workers up
        out["empty"] = [side.empty() for _ in range(reps)]
        out["a"] = [side.chain(chain) for _ in range(reps)]
        out["c"] = [side.sleepers() for _ in range(reps)]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

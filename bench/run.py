"""Run the benchmarks against peers: ``bench/run.py [AREA [ARGS...]]``.

Every folder ``bench/<area>/`` holding a ``bench.py`` with ``main(argv) -> int`` is an area.
Without arguments every area runs (with no arguments of its own); with an area name only
that area runs, and the remaining arguments are handed to its ``main``. Each area prints its
own table. The exit code is non-zero only when an area crashed (raised or returned
non-zero), never because a goal was missed: goals are reported in the tables.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

BENCH = Path(__file__).resolve().parent
Main = Callable[[list[str]], int]


def discover() -> dict[str, Path]:
    """Area name -> its ``bench.py``, for every ``bench/<area>/bench.py``."""
    return {
        path.parent.name: path
        for path in sorted(BENCH.glob("*/bench.py"))
        if not path.parent.name.startswith((".", "_"))
    }


def load(area: str, path: Path) -> Main | None:
    """Import ``bench/<area>/bench.py`` as ``bench_<area>.bench``, so relative imports work."""
    package = f"bench_{area}"
    if package not in sys.modules:
        spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
        spec.submodule_search_locations = [str(path.parent)]
        sys.modules[package] = importlib.util.module_from_spec(spec)
    module = importlib.import_module(f"{package}.bench")
    main = getattr(module, "main", None)
    return main if callable(main) else None


def run_area(area: str, path: Path, argv: list[str]) -> tuple[str, float]:
    """Run one area; returns its status ("ok", "crashed", "skipped: …") and its duration."""
    print(f"\n===== bench {area} {' '.join(argv)}".rstrip() + " =====", flush=True)
    start = time.perf_counter()
    try:
        main = load(area, path)
        if main is None:
            return "skipped: bench.py has no main(argv)", time.perf_counter() - start
        code = main(argv)
    except SystemExit as exc:  # argparse's --help and usage errors
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        raise
    except BaseException:  # an area's crash must not stop the other areas
        traceback.print_exc()
        return "crashed", time.perf_counter() - start
    status = "ok" if code == 0 else f"crashed (exit {code})"
    return status, time.perf_counter() - start


def usage(areas: Sequence[str]) -> str:
    return (
        "usage: bench/run.py [AREA [ARGS...]]\n"
        f"areas: {', '.join(areas) or '(none found)'}\n"
        "Without AREA every area runs; ARGS go to the area (try AREA --help)."
    )


def main(argv: Sequence[str]) -> int:
    areas = discover()
    args = list(argv)
    if args and args[0] in {"-h", "--help", "--list"}:
        print(usage(list(areas)))
        return 0
    if args and args[0] not in areas:
        print(f"unknown area {args[0]!r}\n{usage(list(areas))}", file=sys.stderr)
        return 2
    chosen = {args[0]: args[1:]} if args else {area: [] for area in areas}
    results = {area: run_area(area, areas[area], rest) for area, rest in chosen.items()}
    print("\n===== summary =====")
    for area, (status, seconds) in results.items():
        print(f"{area:<16} {status:<20} {seconds:8.1f} s")
    crashed = [area for area, (status, _) in results.items() if status.startswith("crashed")]
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

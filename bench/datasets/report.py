"""Collect the measurements and print the final table: workload, shipyard, DVC, ratio, goal."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from .sides import Measure

MIB = 1024**2
PEER = "DVC"


@dataclass
class Results:
    """Every measure, by (workload key, side name), and what went wrong."""

    samples: dict[tuple[str, str], list[Measure]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)

    def record(self, key: str, side: str, measure: Measure) -> None:
        self.samples[key, side].append(measure)

    def median_seconds(self, key: str, side: str) -> float | None:
        found = self.samples.get((key, side))
        return statistics.median(m.seconds for m in found) if found else None

    def median_stored(self, key: str, side: str) -> int | None:
        found = self.samples.get((key, side))
        return int(statistics.median(m.stored for m in found)) if found else None

    def notes(self) -> list[str]:
        seen: dict[str, None] = {}
        for (key, side), measures in self.samples.items():
            for m in measures:
                if m.note:
                    seen[f"{key} {side}: {m.note}"] = None
        return list(seen)


@dataclass(frozen=True)
class Summary:
    """One row's figures: medians of both sides and their ratio (peer / shipyard)."""

    ours: float | None
    peer: float | None
    ours_bytes: int | None
    peer_bytes: int | None

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.peer is None or self.ours <= 0:
            return None
        return self.peer / self.ours


Check = Callable[[Summary], bool]


@dataclass(frozen=True)
class Row:
    """A line of the final table: which samples it compares and the goal it is held to."""

    key: str
    label: str
    ours: str
    goal: str
    check: Check
    peer_key: str = ""
    show_bytes: bool = False

    def summarise(self, results: Results) -> Summary:
        peer_key = self.peer_key or self.key
        return Summary(
            results.median_seconds(self.key, self.ours),
            results.median_seconds(peer_key, PEER),
            results.median_stored(self.key, self.ours),
            results.median_stored(peer_key, PEER),
        )


def faster(times: float, under: float | None = None) -> Check:
    """Goal: at least ``times`` x faster than the peer (and under ``under`` seconds)."""

    def check(s: Summary) -> bool:
        fast = s.ratio is not None and s.ratio >= times
        return fast and (under is None or (s.ours is not None and s.ours < under))

    return check


def under(seconds: float) -> Check:
    return lambda s: s.ours is not None and s.ours < seconds


def bytes_at_most(fraction: float) -> Check:
    def check(s: Summary) -> bool:
        if s.ours_bytes is None or not s.peer_bytes:
            return False
        return s.ours_bytes <= fraction * s.peer_bytes

    return check


def rows(table: str, files: str) -> list[Row]:
    """The rows of the final table, with the goals from the issue."""
    normal, full = "shipyard (normal)", "shipyard (full)"
    fast_add = "≥10x DVC, <0.6 s"
    return [
        Row("a", f"a) add {table} Parquet", normal, fast_add, faster(10, 0.6), show_bytes=True),
        Row(
            "a",
            f"a) add {table} Parquet, durability full",
            full,
            fast_add,
            faster(10, 0.6),
            show_bytes=True,
        ),
        Row("b", f"b) add {files} files of 4 KiB", normal, "<3 s", under(3), show_bytes=True),
        Row("b", f"b) add {files} files, durability full", full, "<3 s", under(3), show_bytes=True),
        Row(
            "c-table",
            "c) re-add table, unchanged (dvc add)",
            normal,
            "<0.3 s, ≥10x",
            faster(10, 0.3),
        ),
        Row(
            "c-files",
            f"c) re-add {files} files, unchanged (dvc add)",
            normal,
            "<0.3 s, ≥10x",
            faster(10, 0.3),
        ),
        Row(
            "c-status",
            "c) both unchanged: re-add both / dvc status",
            normal,
            "<0.3 s, ≥10x",
            faster(10, 0.3),
        ),
        Row(
            "d-changed",
            "d) table, 1% rows changed (one block)",
            normal,
            "new bytes ≤10% of DVC",
            bytes_at_most(0.10),
            show_bytes=True,
        ),
        Row(
            "d-appended",
            "d) table, 1% rows appended",
            normal,
            "new bytes ≤10% of DVC",
            bytes_at_most(0.10),
            show_bytes=True,
        ),
    ]


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f} s"


def _bytes(value: int | None) -> str:
    return "—" if value is None else f"{value / MIB:,.1f} MiB"


def _ratio(summary: Summary, row: Row) -> str:
    if row.key.startswith("d") and summary.ours_bytes is not None and summary.peer_bytes:
        share = summary.ours_bytes / summary.peer_bytes
        time_ratio = f"{summary.ratio:.1f}x" if summary.ratio else "—"
        return f"{time_ratio} (bytes {share:.1%})"
    return "—" if summary.ratio is None else f"{summary.ratio:.1f}x"


def render(console: Console, results: Results, table_rows: list[Row], title: str) -> None:
    """Print the final table."""
    out = Table(title=title, show_lines=False)
    for name, justify in (
        ("workload", "left"),
        ("shipyard", "right"),
        ("DVC", "right"),
        ("DVC/shipyard", "right"),
        ("stored shipyard", "right"),
        ("stored DVC", "right"),
        ("goal", "left"),
        ("met?", "center"),
    ):
        out.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in table_rows:
        s = row.summarise(results)
        met = "not run" if s.ours is None else "[green]yes[/]" if row.check(s) else "[red]no[/]"
        out.add_row(
            row.label,
            _seconds(s.ours),
            _seconds(s.peer),
            _ratio(s, row),
            _bytes(s.ours_bytes) if row.show_bytes else "",
            _bytes(s.peer_bytes) if row.show_bytes else "",
            row.goal,
            met,
        )
    console.print(out)


def render_samples(console: Console, results: Results) -> None:
    """Every sample behind the medians, and shipyard's own new_bytes figures."""
    out = Table(title="samples (seconds, in run order)", show_header=True)
    for name in ("workload", "side", "seconds", "stored", "shipyard new_bytes"):
        out.add_column(name)
    for (key, side), measures in sorted(results.samples.items()):
        reported = {m.reported for m in measures if m.reported is not None}
        out.add_row(
            key,
            side,
            " ".join(f"{m.seconds:.3f}" for m in measures),
            " ".join(sorted({_bytes(m.stored) for m in measures})),
            " ".join(_bytes(r) for r in sorted(reported)),
        )
    console.print(out)

"""Collect the timings and print the tables: every sample, then the medians against the goals."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

OURS = "shipyard"
PEER = "MLflow"


@dataclass
class Results:
    """Seconds by (workload key, side), notes and errors."""

    samples: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def record(self, key: str, side: str, seconds: float) -> None:
        self.samples[key, side].append(seconds)

    def median(self, key: str, side: str) -> float | None:
        found = self.samples.get((key, side))
        return statistics.median(found) if found else None

    def note(self, text: str) -> None:
        if text and text not in self.notes:
            self.notes.append(text)


@dataclass(frozen=True)
class Row:
    """A line of the final table.

    ``per`` > 0 shows the time per item (``per`` items, e.g. per call); ``rate`` shows items
    per second as well. ``goal`` is the least ratio peer/shipyard, 0 for information only.
    ``ours_missing`` is what to print when shipyard has no figure.
    """

    key: str
    label: str
    goal: float
    per: int = 0
    rate: int = 0
    ours_key: str = ""
    ours_missing: str = "—"

    def figures(self, results: Results) -> tuple[float | None, float | None]:
        return results.median(self.ours_key or self.key, OURS), results.median(self.key, PEER)


def show_time(seconds: float | None, row: Row) -> str:
    if seconds is None:
        return "—"
    if row.per:
        each = seconds / row.per
        text = f"{each * 1e6:,.1f} µs/call" if each < 1e-3 else f"{each * 1e3:,.2f} ms/call"
        return f"{text} ({seconds:,.3f} s)"
    text = f"{seconds:,.3f} s" if seconds < 100 else f"{seconds:,.0f} s"
    if row.rate:
        text += f" ({row.rate / seconds:,.0f}/s)"
    return text


def render(console: Console, results: Results, rows: list[Row], title: str) -> None:
    """The final table: workload, shipyard, MLflow, ratio, goal, met?"""
    out = Table(title=title)
    for name, justify in (
        ("workload", "left"),
        (OURS, "right"),
        (PEER, "right"),
        (f"ratio {PEER}/{OURS}", "right"),
        ("goal", "left"),
        ("met?", "center"),
    ):
        out.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        ours, peer = row.figures(results)
        ratio = peer / ours if ours and peer else None
        if row.goal <= 0:
            goal, met = "(information)", ""
        else:
            goal = f"≥ {row.goal:g}x"
            met = "—" if ratio is None else ("yes" if ratio >= row.goal else "NO")
        out.add_row(
            row.label,
            show_time(ours, row) if ours is not None else row.ours_missing,
            show_time(peer, row),
            "—" if ratio is None else f"{ratio:,.1f}x",
            goal,
            met,
        )
    console.print(out)


def render_samples(console: Console, results: Results) -> None:
    """Every sample, in the order taken, so that the spread is visible."""
    out = Table(title="all samples (seconds, in the order taken)")
    out.add_column("workload")
    out.add_column("side")
    out.add_column("n", justify="right")
    out.add_column("median", justify="right")
    out.add_column("samples")
    for (key, side), found in sorted(results.samples.items()):
        out.add_row(
            key,
            side,
            str(len(found)),
            f"{statistics.median(found):.4f}",
            ", ".join(f"{s:.4f}" for s in found),
        )
    console.print(out)

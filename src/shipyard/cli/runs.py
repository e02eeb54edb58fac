"""``shipyard runs``: list, show, compare and chart experiment runs, and list experiments."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from shipyard.cli.context import JsonOption, open_service
from shipyard.cli.output import console, emit_json, errors_to_exit, fail, kv_table, table
from shipyard.domain.runs import Run
from shipyard.services.reports import format_value
from shipyard.services.run_reports import (
    RunComparison,
    RunDetails,
    compare_runs,
    describe_run,
    history_stats,
    load_compare_histories,
    load_histories,
    render_compare_html,
    render_history_html,
    short_id,
)

__all__ = ["app"]

app = typer.Typer(help="List, show, compare and chart experiment runs.", no_args_is_help=True)

_STATUS_COLORS = {"running": "cyan", "finished": "green", "failed": "red", "killed": "yellow"}
_KEY_COLUMNS = 6  # the most metric and param columns `runs list` shows
_RunRef = typer.Argument(..., help="A run id, or the short id `runs list` shows.")


@app.command("list")
def list_(
    ctx: typer.Context,
    experiment: list[str] = typer.Option(
        [], "--experiment", "-e", help="Only runs of this experiment; repeatable."
    ),
    filter_: str | None = typer.Option(
        None,
        "--filter",
        "-f",
        help="Filter, e.g. \"metrics.auc > 0.9 and params.model = 'xgb'\" (see docs/runs.md).",
    ),
    order_by: list[str] = typer.Option(
        [], "--order-by", "-o", help="FIELD, FIELD asc or FIELD desc; repeatable."
    ),
    max_results: int = typer.Option(100, "--max-results", "-n", help="Runs in this page."),
    page_token: str | None = typer.Option(
        None, "--page-token", help="The token printed under the previous page."
    ),
    as_json: bool = JsonOption,
) -> None:
    """List runs, newest first unless --order-by says otherwise."""
    with errors_to_exit():
        page = open_service(ctx, "runs").search(
            experiment or None, filter_, order_by or None, max_results, page_token
        )
    if as_json:
        emit_json({"runs": [r.to_dict() for r in page], "next_page_token": page.next_page_token})
        return
    # About 12 characters a key column beside ~60 for the fixed ones, so the table stays legible.
    budget = max(2, min(_KEY_COLUMNS, (console.width - 60) // 12))
    metrics, params = _key_columns(page, budget)
    rows = [
        (
            short_id(r.id),
            escape(r.experiment),
            escape(r.name),
            _status(r.status),
            _time(r.start_time),
            _duration(r.duration),
            *(_number(r.metrics[k].value) if k in r.metrics else "" for k in metrics),
            *(escape(r.params.get(k, "")) for k in params),
        )
        for r in page
    ]
    header = (
        "id",
        "experiment",
        "name",
        "status",
        "start (UTC)",
        "duration",
        *(escape(k) for k in metrics),
        *(escape(f"params.{k}") for k in params),
    )
    out = table(header, rows, title=f"{len(page)} run(s)")
    for column in (0, 3, 4):  # id, status and start read badly when wrapped
        out.columns[column].no_wrap = True
    console.print(out)
    if page.next_page_token:
        console.print(f"more runs: --page-token {page.next_page_token}", markup=False)


def _key_columns(runs: Sequence[Run], budget: int) -> tuple[list[str], list[str]]:
    """The metrics and params half or more of these runs have, at most ``budget`` in all.

    Metrics come first; params keep a third of the columns when there are more metrics.
    """

    def ranked(counts: Counter[str]) -> list[str]:
        common = [k for k, n in counts.items() if 2 * n >= len(runs)]
        return sorted(common, key=lambda k: (-counts[k], k))

    metrics = ranked(Counter(k for r in runs for k in r.metrics))
    params = ranked(Counter(k for r in runs for k in r.params))
    chosen_params = params[: max(budget - len(metrics), budget // 3)]
    return metrics[: budget - len(chosen_params)], chosen_params


@app.command()
def show(ctx: typer.Context, run_id: str = _RunRef, as_json: bool = JsonOption) -> None:
    """Show a run: attributes, params, tags, metrics, artifacts, environment and resources."""
    with errors_to_exit():
        details = describe_run(open_service(ctx, "runs"), run_id)
    if as_json:
        emit_json(details.to_dict())
        return
    _render_details(details)


def _render_details(details: RunDetails) -> None:
    run = details.run
    console.print(f"[bold]{escape(run.name)}[/bold] ({run.id})")
    attributes = {
        "experiment": escape(run.experiment),
        "status": _status(run.status),
        "user": escape(run.user),
        "parent": run.parent_id,
        "start (UTC)": _time(run.start_time),
        "end (UTC)": _time(run.end_time) if run.end_time else None,
        "duration": _duration(run.duration),
        "process": f"{escape(run.host)} pid {run.pid}",
    }
    console.print(kv_table(attributes))
    if run.params:
        console.print(_pairs("params", run.params))
    if run.tags:
        console.print(_pairs("tags", run.tags))
    if run.metrics:
        rows = [
            (escape(m.key), _number(m.value), m.step, _number(m.min), _number(m.max), m.count)
            for m in sorted(run.metrics.values(), key=lambda m: m.key)
        ]
        header = ("metric", "latest", "step", "min", "max", "points")
        console.print(table(header, rows, title="metrics"))
    if details.artifacts:
        files = [(escape(a.path), f"{a.size:,}", a.digest[:19] + "…") for a in details.artifacts]
        console.print(table(("artifact", "bytes", "digest"), files, title="artifacts"))
    if run.environment:
        console.print(kv_table(_environment(run.environment), title="environment"))
    if run.resources:
        console.print(kv_table(_resources(run.resources), title="resources"))


def _pairs(title: str, values: Mapping[str, str]) -> Any:
    rows = [(escape(k), escape(v)) for k, v in sorted(values.items())]
    return table(("key", "value"), rows, title=title)


def _environment(env: Mapping[str, Any]) -> dict[str, str]:
    git = env.get("git") or {}
    python = env.get("python") or {}
    host = env.get("host") or {}
    entry = env.get("entry_point") or {}
    packages = env.get("packages") or {}
    if git:
        commit = (git.get("commit") or "no commit")[:12]
        code = f"{commit} on {git.get('branch') or 'a detached HEAD'}"
        code += {True: ", with uncommitted changes", None: ", changes unknown"}.get(
            git.get("dirty"), ""
        )
    else:
        code = "not in a git work tree"
    machine = [host.get("hostname"), host.get("platform")]
    if host.get("cpu_count"):
        machine.append(f"{host['cpu_count']} CPUs")
    if host.get("memory_total_bytes"):
        machine.append(f"{_bytes(host['memory_total_bytes'])} memory")
    rows = {
        "git": code,
        "python": f"{python.get('implementation', '')} {python.get('version', '')}",
        "host": ", ".join(str(part) for part in machine if part),
        "command": " ".join(str(p) for p in [entry.get("script") or "", *entry.get("argv", [])]),
        "packages": ", ".join(f"{k} {v}" for k, v in sorted(packages.items())),
    }
    return {k: escape(v.strip()) for k, v in rows.items()}


def _resources(resources: Mapping[str, Any]) -> dict[str, Any]:
    labels = {
        "wall_seconds": "wall time",
        "cpu_seconds": "CPU time",
        "children_cpu_seconds": "CPU time of child processes",
    }
    rows: dict[str, Any] = {}
    for key, value in resources.items():
        if key in labels and isinstance(value, (int, float)):
            rows[labels[key]] = f"{value:,.1f} s"
        elif key == "peak_rss_bytes" and isinstance(value, int):
            rows["peak memory"] = _bytes(value)
        else:
            rows[escape(key)] = escape(str(value))
    return rows


@app.command()
def compare(
    ctx: typer.Context,
    run_ids: list[str] = typer.Argument(..., help="Two or more run ids or short ids."),
    html: Path | None = typer.Option(
        None, "--html", help="Also write a self-contained HTML page with metric charts."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Show runs side by side: params and latest metrics, differences highlighted."""
    with errors_to_exit():
        runs = open_service(ctx, "runs")
        comparison = compare_runs(runs, run_ids)
        if html is not None:
            histories = load_compare_histories(runs, comparison)
            _write(html, render_compare_html(comparison.runs, histories))
    if as_json:
        emit_json(comparison.to_dict())
        return
    _render_comparison(comparison)
    if html is not None:
        console.print(f"wrote {escape(str(html))}")


def _render_comparison(comparison: RunComparison) -> None:
    header = ("", *(f"{escape(r.name)} ({short_id(r.id)})" for r in comparison.runs))
    rows = []
    for row in comparison.rows:
        key = escape(row.key if row.section == "attribute" else f"{row.section}s.{row.key}")
        if row.key == "duration" and row.section == "attribute":
            values = [_duration(v) if isinstance(v, float) else "" for v in row.values]
        else:
            values = [_cell(v) for v in row.values]
        if row.differs:
            rows.append((f"[bold yellow]{key}[/]", *(f"[yellow]{v}[/]" for v in values)))
        else:
            rows.append((key, *(f"[dim]{v}[/]" for v in values)))
    console.print(table(header, rows))
    differing = sum(row.differs for row in comparison.rows)
    console.print(f"{differing} of {len(comparison.rows)} field(s) differ")


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return _number(value)
    return escape(str(value))


@app.command()
def history(
    ctx: typer.Context,
    run_id: str = _RunRef,
    metric: list[str] = typer.Option(
        [], "--metric", "-m", help="Only this metric; repeatable (default: every metric)."
    ),
    html: Path | None = typer.Option(
        None, "--html", help="Also write a self-contained HTML page with one chart per metric."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Summarise a run's metric histories: points, first, last, min and max."""
    with errors_to_exit():
        runs = open_service(ctx, "runs")
        run, histories = load_histories(runs, run_id, metric)
        if html is not None:
            _write(html, render_history_html(run, histories))
    stats = [history_stats(h) for h in histories]
    if as_json:
        emit_json(
            {
                "run_id": run.id,
                "metrics": [
                    {**s.to_dict(), **h.to_dict()} for s, h in zip(stats, histories, strict=True)
                ],
            }
        )
        return
    rows = [
        (
            escape(s.key),
            f"{s.count:,}",
            "" if s.first_step is None else f"{s.first_step}…{s.last_step}",
            _number(s.first),
            _number(s.last),
            _number(s.min),
            _number(s.max),
            ", ".join(f"{n:,} {what}" for n, what in ((s.nan, "NaN"), (s.inf, "±inf")) if n),
        )
        for s in stats
    ]
    header = ("metric", "points", "steps", "first", "last", "min", "max", "")
    console.print(table(header, rows, title=f"{escape(run.name)} ({short_id(run.id)})"))
    if html is not None:
        console.print(f"wrote {escape(str(html))}")


@app.command()
def experiments(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List experiments."""
    with errors_to_exit():
        found = open_service(ctx, "runs").experiments()
    if as_json:
        emit_json([e.to_dict() for e in found])
        return
    rows = [(escape(e.name), _time(e.created_at), escape(e.created_by), e.id) for e in found]
    console.print(table(("experiment", "created (UTC)", "by", "id"), rows))


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        fail(f"cannot write {path}: {error.strerror or error}")


def _status(status: str) -> str:
    color = _STATUS_COLORS.get(status)
    return f"[{color}]{status}[/{color}]" if color else escape(status)


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _number(value: float | None) -> str:
    if value is None:
        return ""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return format_value(value)


def _bytes(size: int) -> str:
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"

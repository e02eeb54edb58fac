"""``shipyard run`` and ``shipyard pipelines``: run, list, show, logs, cancel, resume."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.tree import Tree

from shipyard.cli.context import JsonOption, open_service
from shipyard.cli.output import console, emit_json, errors_to_exit, fail, kv_table, table
from shipyard.domain.pipelines import TERMINAL, PipelineRun, TaskRun
from shipyard.services.reports import format_value

__all__ = ["app", "run"]

app = typer.Typer(help="List, show, cancel and resume pipeline runs.", no_args_is_help=True)

_COLORS = {
    "succeeded": "green",
    "cached": "cyan",
    "failed": "red",
    "crashed": "red",
    "cancelled": "yellow",
    "running": "blue",
    "retrying": "magenta",
    "pending": "white",
}
_Run = typer.Argument(..., help="A pipeline run id (or its first 6+ characters).")


def _status(status: str) -> str:
    return f"[{_COLORS.get(status, 'white')}]{status}[/]"


def _params(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--param {item!r} must look like NAME=VALUE")
        out[key.strip()] = value
    return out


def run(
    ctx: typer.Context,
    target: str = typer.Argument(..., help="path/to/file.py:flow or package.module:flow."),
    param: list[str] = typer.Option([], "--param", "-p", help="NAME=VALUE; repeatable."),
    executor: str | None = typer.Option(
        None, "--executor", "-x", help="local, ray or ray://host:port (default: settings)."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Run cached tasks again."),
    workers: int | None = typer.Option(None, "--workers", "-w", min=1, help="Tasks at once."),
    as_json: bool = JsonOption,
) -> None:
    """Run a pipeline now and wait for it; exit code 1 when it does not succeed."""
    params = _params(param)
    with errors_to_exit():
        result = open_service(ctx, "pipelines").run(
            target, params, executor=executor, cache=not no_cache, max_workers=workers
        )
    value = _json_result(result) if result.status == "succeeded" else None
    if as_json:
        emit_json({**result.to_dict(), "result": value})
    else:
        console.print(
            f"pipeline {escape(result.pipeline)} run {result.id}: {_status(result.status)} "
            f"in {format_value(result.duration)} s"
        )
        if value is not None:
            console.print(f"result: {escape(json.dumps(value))}")
        if result.error:
            console.print(escape(result.error.rstrip()))
    if result.status != "succeeded":
        raise typer.Exit(1)


def _json_result(run: PipelineRun) -> Any:
    """The run's return value when JSON can carry it, else its repr (cut to 200 chars)."""
    value = run.result
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        text = repr(value)
        return text if len(text) <= 200 else text[:199] + "…"
    return value


@app.command("list")
def list_(
    ctx: typer.Context,
    pipeline: str | None = typer.Option(None, "--pipeline", help="Only runs of this pipeline."),
    status: str | None = typer.Option(None, "--status", help="Only runs in this state."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="Runs to show."),
    as_json: bool = JsonOption,
) -> None:
    """List pipeline runs, newest first."""
    with errors_to_exit():
        runs = open_service(ctx, "pipelines").list(pipeline=pipeline, status=status, limit=limit)
    if as_json:
        emit_json({"runs": [r.to_dict() for r in runs]})
        return
    rows = [
        (
            r.id,
            escape(r.pipeline),
            _status(r.status),
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            format_value(r.duration),
            escape(r.executor),
        )
        for r in runs
    ]
    console.print(table(["run", "pipeline", "status", "created", "seconds", "executor"], rows))


@app.command()
def show(
    ctx: typer.Context,
    run_id: str = _Run,
    html: Path | None = typer.Option(
        None, "--html", help="Write a self-contained timeline (Gantt) report to this file."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Show a run and its tasks as a tree of the DAG with their states."""
    with errors_to_exit():
        pipelines = open_service(ctx, "pipelines")
        if html is not None:
            html.write_text(pipelines.report_html(run_id), encoding="utf-8")
            if as_json:
                emit_json({"html": str(html)})
            else:
                console.print(f"wrote {escape(str(html))}")
            return
        found, tasks = pipelines.describe(run_id)
    if as_json:
        emit_json({"run": found.to_dict(), "tasks": [t.to_dict() for t in tasks]})
        return
    console.print(
        kv_table(
            {
                "run": found.id,
                "pipeline": found.pipeline,
                "status": found.status,
                "target": found.target,
                "params": found.params,
                "executor": found.executor,
                "created": found.created_at.isoformat(),
                "seconds": format_value(found.duration),
                "resumed from": found.resumed_from,
                "error": (found.error or "").strip().splitlines()[-1] if found.error else None,
            }
        )
    )
    console.print(_tree(found, tasks))


def _tree(found: PipelineRun, tasks: list[TaskRun]) -> Tree:
    """The DAG as a tree: each task under its first upstream task."""
    root = Tree(f"{escape(found.pipeline)} {_status(found.status)}")
    nodes: dict[str, Tree] = {}
    for t in tasks:
        parent = nodes.get(t.upstream[0]) if t.upstream else None
        more = f" [dim](also after {', '.join(t.upstream[1:4])})[/]" if len(t.upstream) > 1 else ""
        label = (
            f"{escape(t.key)} {_status(t.status)} {format_value(t.duration)} s"
            + (f" attempt {t.attempt}" if t.attempt > 1 else "")
            + more
        )
        nodes[t.key] = (parent or root).add(label)
    return root


@app.command()
def logs(
    ctx: typer.Context,
    run_id: str = _Run,
    task: str | None = typer.Option(None, "--task", "-t", help="Only this task (key or name)."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing tasks' logs as they end, until the run ends."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Print the captured stdout, stderr and logging of a run's tasks."""
    seen: set[str] = set()
    with errors_to_exit():
        pipelines = open_service(ctx, "pipelines")
        while True:
            running = follow and pipelines.get(run_id).status not in TERMINAL
            found = [(k, text) for k, text in pipelines.logs(run_id, task) if k not in seen]
            if as_json:
                emit_json({"logs": [{"task": k, "text": text} for k, text in found]})
            else:
                for key, text in found:
                    console.rule(escape(key))
                    console.print(escape(text.rstrip("\n")), markup=True)
            seen.update(k for k, _ in found)
            if not running:
                return
            time.sleep(1.0)


@app.command()
def cancel(ctx: typer.Context, run_id: str = _Run, as_json: bool = JsonOption) -> None:
    """Ask a running run to stop: its process tasks are killed, the rest marked cancelled."""
    with errors_to_exit():
        found = open_service(ctx, "pipelines").cancel(run_id)
    if as_json:
        emit_json(found.to_dict())
    else:
        console.print(f"cancel requested for run {found.id}")


@app.command()
def resume(
    ctx: typer.Context,
    run_id: str = _Run,
    executor: str | None = typer.Option(None, "--executor", "-x", help="Default: the run's."),
    as_json: bool = JsonOption,
) -> None:
    """Run a failed or cancelled run again, reusing its succeeded tasks' results."""
    with errors_to_exit():
        found = open_service(ctx, "pipelines").resume(run_id, executor=executor)
    if as_json:
        emit_json(found.to_dict())
    else:
        console.print(f"run {found.id} (resuming {found.resumed_from}): {_status(found.status)}")
    if found.status != "succeeded":
        raise typer.Exit(1)

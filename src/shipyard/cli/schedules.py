"""``shipyard schedules`` (add, update, list, show, remove, sync) and ``shipyard scheduler``.

Both work on the local project or, with ``SHIPYARD_URI``, through the server: targets are
loaded here either way, and a remote scheduler launches its runs here with their records on
the server.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from types import FrameType

import typer
from rich.markup import escape

from shipyard.cli.context import JsonOption, open_service
from shipyard.cli.output import console, emit_json, errors_to_exit, fail, kv_table, table
from shipyard.domain.schedules import Schedule

__all__ = ["app", "scheduler"]

app = typer.Typer(help="Run pipelines on a cron expression or an interval.", no_args_is_help=True)

_Name = typer.Argument(..., help="The schedule's name.")
_Cron = typer.Option(None, "--cron", help="Cron expression in UTC, e.g. '0 3 * * *' or @daily.")
_Every = typer.Option(None, "--every", help="Interval instead of cron: 15m, 1h, 1d or seconds.")
_Param = typer.Option([], "--param", "-p", help="Pipeline parameter KEY=VALUE; repeatable.")
_MaxCatchup = typer.Option(
    None, "--max-catchup", help="With --missed catchup: launch at most N missed runs (10)."
)


def _params(values: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            fail(f"--param {value!r}: write the parameter as KEY=VALUE")
        params[key] = text
    return params


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _show(schedule: Schedule) -> None:
    console.print(
        kv_table(
            {
                "name": schedule.name,
                "pipeline": schedule.pipeline,
                "target": schedule.target,
                "trigger": schedule.trigger.text,
                "params": ", ".join(f"{k}={v!r}" for k, v in schedule.params.items()) or "-",
                "missed runs": schedule.missed.text,
                "enabled": "yes" if schedule.enabled else "no",
                "next run": _when(schedule.next_run_at),
                "last run": _when(schedule.last_run_at),
                "last run id": schedule.last_run_id,
                "lease": f"{schedule.lease_owner} until {_when(schedule.lease_until)}"
                if schedule.lease_owner
                else None,
                "created": f"{_when(schedule.created_at)} by {schedule.created_by}",
            }
        ),
        markup=False,
    )


@app.command()
def add(
    ctx: typer.Context,
    name: str = _Name,
    target: str = typer.Argument(..., help="The pipeline: path/file.py:flow or module:flow."),
    cron: str | None = _Cron,
    every: str | None = _Every,
    param: list[str] = _Param,
    missed: str = typer.Option(
        "skip", "--missed", help="Missed runs: skip (run the latest once) or catchup."
    ),
    max_catchup: int | None = _MaxCatchup,
    disabled: bool = typer.Option(False, "--disabled", help="Add it switched off."),
    as_json: bool = JsonOption,
) -> None:
    """Schedule a pipeline on --cron or --every (exactly one)."""
    params = _params(param)
    with errors_to_exit():
        schedule = open_service(ctx, "schedules").add(
            name,
            target,
            cron=cron,
            every=every,
            params=params,
            missed=missed,
            max_catchup=max_catchup,
            enabled=not disabled,
        )
    if as_json:
        emit_json(schedule.to_dict())
        return
    console.print(
        f"Scheduled [bold]{escape(name)}[/bold] ({escape(schedule.trigger.text)}); "
        f"next run {_when(schedule.next_run_at)}"
    )


@app.command()
def update(
    ctx: typer.Context,
    name: str = _Name,
    target: str | None = typer.Option(None, "--target", help="Point it at another pipeline."),
    cron: str | None = _Cron,
    every: str | None = _Every,
    param: list[str] = typer.Option(
        [], "--param", "-p", help="KEY=VALUE; repeatable; replaces all parameters."
    ),
    missed: str | None = typer.Option(None, "--missed", help="skip or catchup."),
    max_catchup: int | None = _MaxCatchup,
    enabled: bool | None = typer.Option(
        None, "--enable/--disable", help="Switch it on (from the next occurrence) or off."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Change a schedule; options not given stay as they are."""
    params = _params(param) if param else None
    with errors_to_exit():
        schedule = open_service(ctx, "schedules").update(
            name,
            target=target,
            cron=cron,
            every=every,
            params=params,
            missed=missed,
            max_catchup=max_catchup,
            enabled=enabled,
        )
    if as_json:
        emit_json(schedule.to_dict())
        return
    _show(schedule)


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Every schedule, with its next and last run."""
    with errors_to_exit():
        found = open_service(ctx, "schedules").list()
    if as_json:
        emit_json([s.to_dict() for s in found])
        return
    if not found:
        console.print("No schedules yet: add one with `shipyard schedules add`.", markup=False)
        return
    rows = [
        (
            escape(s.name),
            escape(s.pipeline),
            escape(s.trigger.text),
            _when(s.next_run_at) if s.enabled else "[dim]disabled[/dim]",
            _when(s.last_run_at),
            s.missed.text,
        )
        for s in found
    ]
    console.print(table(["name", "pipeline", "trigger", "next run", "last run", "missed"], rows))


@app.command()
def show(ctx: typer.Context, name: str = _Name, as_json: bool = JsonOption) -> None:
    """One schedule in full, with its lease if a scheduler holds it."""
    with errors_to_exit():
        schedule = open_service(ctx, "schedules").get(name)
    if as_json:
        emit_json(schedule.to_dict())
        return
    _show(schedule)


@app.command()
def remove(ctx: typer.Context, name: str = _Name, as_json: bool = JsonOption) -> None:
    """Delete a schedule (the runs it launched stay)."""
    with errors_to_exit():
        schedule = open_service(ctx, "schedules").remove(name)
    if as_json:
        emit_json(schedule.to_dict())
        return
    console.print(f"Removed schedule [bold]{escape(name)}[/bold]")


@app.command()
def sync(
    ctx: typer.Context,
    target: str | None = typer.Argument(
        None, help="A pipeline with schedule=...; without it, shipyard.toml's [schedules]."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Register declared schedules: a @pipeline(schedule=...) or shipyard.toml's."""
    with errors_to_exit():
        results = open_service(ctx, "schedules").sync(target)
    if as_json:
        emit_json([r.to_dict() for r in results])
        return
    if not results:
        console.print("shipyard.toml declares no [schedules.NAME] tables.", markup=False)
    for result in results:
        console.print(
            f"{result.action} [bold]{escape(result.schedule.name)}[/bold] "
            f"({escape(result.schedule.trigger.text)}); next run "
            f"{_when(result.schedule.next_run_at)}"
        )


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        if not stop.is_set():
            typer.echo("Stopping: no new runs are launched; waiting for running ones", err=True)
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals reach the main thread only
        return
    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def scheduler(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="Launch what is due now, wait, and exit."),
    tick: float = typer.Option(10.0, "--tick", help="Seconds between checks for due runs."),
    max_parallel: int = typer.Option(
        4, "--max-parallel", help="Schedules whose runs go on at the same time."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Run due pipelines: every --tick seconds, or once with --once.

    Any number of schedulers may run against one project: each due run is launched once.
    """

    def launched(name: str, run_id: str) -> None:
        if not as_json:
            console.print(f"schedule [bold]{escape(name)}[/bold] launched run {run_id}")

    with errors_to_exit(), _stop_on_signals() as stop:
        schedules = open_service(ctx, "schedules")
        if not once and not as_json:
            console.print(f"Scheduler {schedules.owner} running; Ctrl-C stops it.")
        ids = schedules.serve(stop, tick, once=once, max_parallel=max_parallel, on_launch=launched)
    if as_json:
        emit_json({"launched": ids})
    elif once and not ids:
        console.print("Nothing was due.", markup=False)

"""``shipyard predictions``: read the prediction log, give labels, query it with SQL."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from shipyard.cli.context import JsonOption, open_service
from shipyard.cli.output import console, emit_json, errors_to_exit, table
from shipyard.domain.checks import parse_duration
from shipyard.domain.ids import as_utc, utcnow
from shipyard.errors import InvalidArgumentError

__all__ = ["app"]

app = typer.Typer(
    help="The prediction log: what served models were asked and answered, and the labels.",
    no_args_is_help=True,
)

_Model = typer.Argument(..., help="The model's name.")
_Since = typer.Option(
    None, "--since", help="Only rows this recent: a duration (90s, 15m, 24h, 7d) or an ISO time."
)
_Until = typer.Option(None, "--until", help="Only rows before this: a duration ago or an ISO time.")


def _moment(text: str | None) -> datetime | None:
    """``24h`` (that long ago) or an ISO-8601 time (naive means UTC)."""
    if text is None:
        return None
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError:
        pass
    try:
        return utcnow() - parse_duration(text)
    except InvalidArgumentError:
        raise InvalidArgumentError(
            f"{text!r} is neither a duration (90s, 15m, 24h, 7d) nor an ISO time"
        ) from None


def _render(table_: Any, as_json: bool) -> None:
    rows = table_.to_pylist()
    if as_json:
        emit_json(rows)
        return
    names = table_.column_names
    cells = [[escape("" if r[c] is None else str(r[c])) for c in names] for r in rows]
    console.print(table(names, cells))
    console.print(f"{len(rows)} row(s)")


@app.command()
def show(
    ctx: typer.Context,
    model: str = _Model,
    since: str | None = _Since,
    until: str | None = _Until,
    deployment: str | None = typer.Option(None, "--deployment", help="Only this deployment's."),
    limit: int = typer.Option(20, "--limit", "-n", min=0, help="Show the newest N rows."),
    as_json: bool = JsonOption,
) -> None:
    """Show the newest logged predictions of a model, with their labels when known."""
    with errors_to_exit():
        logged = open_service(ctx, "predictions").read(
            model, since=_moment(since), until=_moment(until), deployment_id=deployment
        )
    _render(logged.slice(max(0, logged.num_rows - limit)), as_json)


@app.command()
def feedback(
    ctx: typer.Context,
    model: str = _Model,
    file: Path = typer.Argument(..., help="A CSV file with a request-id and a label column."),
    id_column: str = typer.Option("request_id", "--id-column", help="The request-id column."),
    label_column: str = typer.Option("label", "--label-column", help="The label column."),
    deployment: str | None = typer.Option(None, "--deployment", help="The deployment, if known."),
    as_json: bool = JsonOption,
) -> None:
    """Store ground-truth labels by request id; a label given again replaces the old one."""
    with errors_to_exit():
        stored = open_service(ctx, "predictions").feedback_file(
            model,
            file,
            id_column=id_column,
            label_column=label_column,
            deployment_id=deployment,
        )
    if as_json:
        emit_json({"model": model, "stored": stored})
    else:
        console.print(f"stored {stored} label(s) for {escape(model)}")


@app.command()
def query(
    ctx: typer.Context,
    model: str = _Model,
    sql: str = typer.Argument(..., help="A DuckDB SELECT over the table `predictions`."),
    since: str | None = _Since,
    until: str | None = _Until,
    as_json: bool = JsonOption,
) -> None:
    """Run a DuckDB SELECT over a model's log, seen as the table `predictions`."""
    with errors_to_exit():
        result = open_service(ctx, "predictions").sql(
            model, sql, since=_moment(since), until=_moment(until)
        )
    _render(result, as_json)

"""``shipyard deployments``: which model versions are served where, running or stopped."""

from __future__ import annotations

import typer
from rich.markup import escape

from shipyard.cli.context import JsonOption, open_service
from shipyard.cli.output import console, emit_json, errors_to_exit, kv_table, table
from shipyard.domain.deployments import Deployment

__all__ = ["app"]

app = typer.Typer(
    help="Deployments: a model version served at a URL, from start to stop.",
    no_args_is_help=True,
)


def _time(deployment: Deployment, which: str) -> str:
    moment = getattr(deployment, which)
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


@app.command("list")
def list_(
    ctx: typer.Context,
    model: str | None = typer.Option(None, "--model", "-m", help="Only this model's."),
    status: str | None = typer.Option(
        None, "--status", "-s", help="running or stopped (as they read now)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """List deployments, newest first; one whose server went silent reads as stopped."""
    with errors_to_exit():
        found = open_service(ctx, "deployments").list(name=model, status=status)
    if as_json:
        emit_json([d.to_dict() for d in found])
        return
    rows = [
        (
            d.id,
            escape(d.ref + (f" ({d.alias})" if d.alias else "")),
            d.status,
            escape(d.url),
            escape(f"{d.host}:{d.pid}"),
            _time(d, "started_at"),
        )
        for d in found
    ]
    out = table(("id", "model", "status", "url", "host:pid", "started (UTC)"), rows)
    for index, column in enumerate(out.columns):
        column.no_wrap = index in (0, 2)  # whole ids and statuses; the rest folds
        column.overflow = "fold"
    console.print(out)


@app.command()
def show(
    ctx: typer.Context,
    deployment_id: str = typer.Argument(..., help="The deployment's id."),
    as_json: bool = JsonOption,
) -> None:
    """Show one deployment: model version, URL, host, process, times, status."""
    with errors_to_exit():
        deployment = open_service(ctx, "deployments").get(deployment_id)
    if as_json:
        emit_json(deployment.to_dict())
        return
    fields = deployment.to_dict()
    console.print(
        kv_table({k: escape(str(v)) if v is not None else None for k, v in fields.items()})
    )

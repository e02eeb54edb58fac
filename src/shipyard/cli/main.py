"""The ``shipyard`` command: global options and the table of sub-commands."""

from __future__ import annotations

from pathlib import Path

import typer

from shipyard._version import __version__
from shipyard.cli import (
    audit,
    blobs,
    datasets,
    db,
    deployments,
    lineage,
    maintenance,
    models,
    monitoring,
    packaging,
    pipelines,
    predictions,
    projects,
    runs,
    schedules,
    server,
    serving,
    tokens,
    users,
)
from shipyard.cli.context import state

__all__ = ["app", "run"]

app = typer.Typer(
    name="shipyard",
    help="shipyard: datasets, pipelines, tracking, registry, serving and monitoring.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"shipyard {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    project: Path | None = typer.Option(
        None,
        "--project",
        "-C",
        help="Work on the project at or above this folder (default: the working directory).",
        envvar="SHIPYARD_PROJECT",
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """shipyard: the MLOps loop on a laptop, a team server or a Ray cluster."""
    state(ctx).project = project


app.command()(projects.init)
app.command()(projects.info)
app.command()(maintenance.fsck)
app.command()(maintenance.gc)
app.add_typer(db.app, name="db")
app.add_typer(blobs.app, name="blobs")
app.add_typer(datasets.app, name="data")
app.add_typer(runs.app, name="runs")
app.add_typer(models.app, name="models")
app.add_typer(users.app, name="users")
app.add_typer(tokens.app, name="tokens")
app.add_typer(audit.app, name="audit")
app.add_typer(deployments.app, name="deployments")
app.add_typer(predictions.app, name="predictions")
app.add_typer(monitoring.app, name="monitor")
app.command("lineage")(lineage.show)
app.command("package")(packaging.package)
app.command("serve")(serving.serve)
app.command("server")(server.server)
app.command("run")(pipelines.run)
app.add_typer(pipelines.app, name="pipelines")
app.add_typer(schedules.app, name="schedules")
app.command("scheduler")(schedules.scheduler)


def run() -> None:
    """Entry point of the ``shipyard`` script."""
    app()

"""``shipyard init`` and ``shipyard info``."""

from __future__ import annotations

from pathlib import Path

import typer

from shipyard.cli.context import JsonOption, open_project
from shipyard.cli.output import console, emit_json, errors_to_exit, kv_table
from shipyard.services.projects import init_project

__all__ = ["info", "init"]


def init(
    path: Path = typer.Argument(Path(), help="Folder to make a project (default: here)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing shipyard.toml."),
    as_json: bool = JsonOption,
) -> None:
    """Write a commented shipyard.toml and create the .shipyard/ stores."""
    with errors_to_exit():
        settings = init_project(path, force=force)
    result = {
        "root": str(settings.root),
        "config": str(settings.config_file),
        "metadata_uri": settings.metadata_uri,
        "artifact_uri": settings.artifact_uri,
    }
    if as_json:
        emit_json(result)
        return
    console.print(f"[green]Initialised shipyard project[/green] in {settings.root}")
    console.print(kv_table({k: v for k, v in result.items() if k != "root"}))


def info(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Show the configured stores, their versions and whether they can be reached."""
    with errors_to_exit():
        report = open_project(ctx, migrate=False, remote_ok=True).maintenance.info()
    if as_json:
        emit_json(report.to_dict())
        return

    def mark(ok: bool) -> str:
        return "[green]reachable[/green]" if ok else "[red]unreachable[/red]"

    console.print(
        kv_table(
            {
                "shipyard": report.version,
                "project": report.project_root,
                "user": report.user,
                "metadata": f"{report.metadata_uri} ({report.metadata_backend})",
                "metadata state": f"{mark(report.metadata_reachable)} {report.metadata_detail}",
                "schema": f"{report.schema_revision or 'empty'} (newest {report.schema_head})",
                "artifacts": report.artifact_uri,
                "artifact state": f"{mark(report.artifact_reachable)} {report.artifact_detail}",
                "executor": report.executor,
                "server": report.server_uri or "none (local mode)",
            },
            title="shipyard info",
        )
    )

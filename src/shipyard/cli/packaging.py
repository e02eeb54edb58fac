"""``shipyard package``: write a model version as a self-contained, servable folder.

The bundle's ``serve.py`` runs ``shipyard.server.packaging`` (the HTTP layer), not this module.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from shipyard.cli.context import JsonOption, open_service
from shipyard.cli.output import console, emit_json, errors_to_exit, kv_table
from shipyard.services.packaging import PORT

__all__ = ["package"]


def package(
    ctx: typer.Context,
    reference: str = typer.Argument(
        ..., help="The version to package: NAME@VERSION, NAME@latest, NAME@ALIAS or NAME@STAGE."
    ),
    out: Path = typer.Option(
        ..., "--output", "-o", help="The bundle's folder (created; must be empty unless --force)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace the folder's contents."),
    as_json: bool = JsonOption,
) -> None:
    """Write a model version as a bundle: files + digests, pinned requirements, Dockerfile."""
    with errors_to_exit():
        # In remote mode the version's files come through the server, verified by digest;
        # the bundle is written here, the same as a local project writes it.
        written = open_service(ctx, "packages").package(reference, out, force=force)
    if as_json:
        emit_json(written.to_dict())
        return
    console.print(
        f"packaged [bold]{escape(written.version.ref)}[/bold] into {escape(str(written.folder))}"
    )
    console.print(
        kv_table(
            {
                "runtime": written.runtime,
                "files": len(written.files),
                "requirements": f"{len(written.requirements)} pinned",
                "wheel": escape(written.wheel),
                "manifest": written.manifest_digest,
                "serve": f"cd {escape(str(written.folder))} && python serve.py --port {PORT}",
                "docker": f"docker build -t {escape(written.version.name)} "
                f"{escape(str(written.folder))}",
            }
        )
    )

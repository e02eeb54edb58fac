"""``shipyard server``: the team server's REST API over this project."""

from __future__ import annotations

import typer

from shipyard.cli.context import JsonOption, load_settings
from shipyard.cli.output import emit_json, errors_to_exit

__all__ = ["server"]


def server(
    ctx: typer.Context,
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Interface to listen on; non-loopback needs auth (users)."
    ),
    port: int = typer.Option(5000, "--port", "-p", min=1, max=65535, help="Port to listen on."),
    workers: int = typer.Option(
        1, "--workers", "-w", min=1, max=64, help="Server processes sharing the port."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Serve the REST API under /api/v1 (auth on once users exist; loopback only without)."""
    # Imported here: uvicorn and FastAPI stay out of every other command.
    from shipyard.server.api.serve import ServerOptions, serve

    def announce(text: str) -> None:
        if as_json:
            emit_json({"url": f"http://{host}:{port}", "banner": text})
        else:
            typer.echo(text)

    with errors_to_exit():
        serve(load_settings(ctx), ServerOptions(host, port, workers), announce=announce)

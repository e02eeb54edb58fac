"""``shipyard serve``: answer predictions of a model version over HTTP."""

from __future__ import annotations

import re
from typing import Any

import typer
from rich.markup import escape

from shipyard.cli.context import JsonOption, load_settings, open_services
from shipyard.cli.output import console, emit_json, errors_to_exit, fail

__all__ = ["serve"]

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1024,
    "k": 1024,
    "mb": 1024**2,
    "m": 1024**2,
    "gb": 1024**3,
    "g": 1024**3,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def _size(text: str) -> int:
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        fail(f"--body-limit {text!r} is not a size such as 10MB, 512KB or 1048576")
        raise AssertionError  # fail() exits
    return int(float(match.group(1)) * _UNITS[unit])


def _runner() -> Any:
    # Imported when a server starts: uvicorn and the app stay out of every other command.
    from shipyard.server.serving import run

    return run


def serve(
    ctx: typer.Context,
    reference: str = typer.Argument(
        ..., help="NAME@VERSION, NAME@latest, NAME@ALIAS or NAME@STAGE."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8080, "--port", "-p", help="Port to listen on."),
    workers: int = typer.Option(
        1, "--workers", "-w", min=1, help="Server processes sharing the port."
    ),
    runtime: str = typer.Option(
        "auto",
        "--runtime",
        help="auto (ONNX when a parity-checked export exists, else native), onnx or native.",
    ),
    follow: bool = typer.Option(
        False, "--follow", help="Watch the alias and switch to the version it moves to."
    ),
    follow_every: float = typer.Option(
        10.0, "--follow-every", min=0.05, help="Seconds between checks of the followed alias."
    ),
    max_batch: int = typer.Option(64, "--max-batch", min=1, help="Most rows in one micro-batch."),
    max_wait_us: int = typer.Option(
        500, "--max-wait-us", min=0, help="Longest a row waits for companions under load (µs)."
    ),
    no_batching: bool = typer.Option(False, "--no-batching", help="Predict each request alone."),
    body_limit: str = typer.Option(
        "10MB", "--body-limit", help="Largest request body (413 above)."
    ),
    sample_rate: float = typer.Option(
        1.0, "--sample-rate", min=0.0, max=1.0, help="Share of requests kept in the prediction log."
    ),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn's log level."),
    fd: int | None = typer.Option(None, "--fd", hidden=True, help="Inherited listening socket."),
    as_json: bool = JsonOption,
) -> None:
    """Serve a model version over HTTP until Ctrl-C or SIGTERM (then drain and stop).

    An unknown model or alias, or a model file that fails its digest check, stops it first.
    """
    from shipyard.services.serving import RUNTIMES, BatchOptions  # numpy, asyncio: on use

    if runtime not in RUNTIMES:
        fail(f"--runtime is one of {', '.join(RUNTIMES)}, not {runtime!r}")
    run = _runner()
    options = run.ServeOptions(
        host=host,
        port=port,
        workers=workers,
        runtime=runtime,
        follow=follow,
        follow_every=follow_every,
        batching=BatchOptions(not no_batching, max_batch, max_wait_us),
        body_limit=_size(body_limit),
        sample_rate=sample_rate,
        log_level=log_level,
        fd=fd,
    )

    def ready(info: dict[str, Any]) -> None:
        if as_json:
            emit_json(info)
        else:
            console.print(
                f"serving [bold]{escape(info['reference'])}[/bold] "
                f"({info['runtime']}) at {escape(info['url'])}"
                + (f" with {workers} workers" if workers > 1 else "")
            )

    with errors_to_exit():
        project = open_services(ctx)  # the local project, or the server SHIPYARD_URI names
        if workers > 1 and fd is None:
            root = load_settings(ctx).root
            code = run.serve_workers(project, reference, options, ready, root=root)
            raise typer.Exit(code)
        run.serve(project, reference, options, ready)

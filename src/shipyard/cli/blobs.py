"""``shipyard blobs``: put, get and list content-addressed blobs by digest."""

from __future__ import annotations

from pathlib import Path

import typer

from shipyard.cli.context import JsonOption, open_project
from shipyard.cli.output import console, emit_json, errors_to_exit

__all__ = ["app"]

app = typer.Typer(help="Store and fetch raw blobs by their BLAKE3 digest.", no_args_is_help=True)


@app.command()
def put(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="File to store."),
    as_json: bool = JsonOption,
) -> None:
    """Store a file; print its digest. Identical content is stored once."""
    with errors_to_exit():
        info = open_project(ctx).blobs.put(path)
    if as_json:
        emit_json({"digest": info.digest, "size": info.size, "new": info.new})
    else:
        note = "stored" if info.new else "already stored"
        console.print(f"{info.digest} {info.size:,} bytes ({note})")


@app.command()
def get(
    ctx: typer.Context,
    digest: str = typer.Argument(..., help="Digest, blake3:<hex>."),
    output: Path = typer.Option(..., "-o", "--output", help="File to write."),
    as_json: bool = JsonOption,
) -> None:
    """Write a blob to a file, verified against its digest."""
    with errors_to_exit():
        path = open_project(ctx).blobs.get(digest, output)
    if as_json:
        emit_json({"digest": digest, "path": str(path)})
    else:
        console.print(f"wrote {path}")


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List every stored blob."""
    with errors_to_exit():
        project = open_project(ctx)
        digests = sorted(project.blobs.list())
        rows = [{"digest": d, "size": project.blobs.size(d)} for d in digests]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        console.print(f"{row['digest']} {row['size']:>12,}")

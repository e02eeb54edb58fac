"""``shipyard db upgrade`` and ``shipyard db status``: the metadata schema's migrations."""

from __future__ import annotations

import typer

from shipyard.cli.context import JsonOption, load_settings
from shipyard.cli.output import console, emit_json, errors_to_exit, kv_table
from shipyard.stores.metadata import SqlMetadataStore

__all__ = ["app"]

app = typer.Typer(help="Migrate and inspect the metadata store's schema.", no_args_is_help=True)


@app.command()
def status(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Show the schema revision of the metadata store and any pending migrations."""
    with errors_to_exit():
        store = SqlMetadataStore(load_settings(ctx).metadata_uri, migrate=False)
        try:
            result = store.status()
        finally:
            store.close()
    data = {"current": result.current, "head": result.head, "pending": list(result.pending)}
    if as_json:
        emit_json(data)
        return
    console.print(
        kv_table(
            {
                "current": result.current or "empty store",
                "newest": result.head,
                "pending": ", ".join(result.pending) or "none",
            }
        )
    )


@app.command()
def upgrade(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Apply pending migrations (safe to run from many processes at once)."""
    with errors_to_exit():
        store = SqlMetadataStore(load_settings(ctx).metadata_uri, migrate=False)
        try:
            applied = store.migrate()
        finally:
            store.close()
    if as_json:
        emit_json({"applied": applied})
    elif applied:
        console.print(f"applied {', '.join(applied)}")
    else:
        console.print("already up to date")

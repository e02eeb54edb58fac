"""``shipyard audit``: read the audit log and verify its hash chain."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.markup import escape

from shipyard.cli.context import JsonOption, open_service
from shipyard.cli.output import console, emit_json, errors_to_exit, kv_table, table
from shipyard.domain.audit import AuditEntry

__all__ = ["app"]

app = typer.Typer(help="The append-only, hash-chained log of every change.", no_args_is_help=True)


def _state(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _change(before: Any, after: Any) -> str:
    """``key: old → new`` for what changed, so an entry reads in one narrow column."""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = sorted(set(before) | set(after))
        return ", ".join(
            f"{k}: {_state(before.get(k))} → {_state(after.get(k))}"
            for k in keys
            if before.get(k) != after.get(k)
        )
    if before is None and isinstance(after, dict):
        return ", ".join(f"{k}={_state(v)}" for k, v in sorted(after.items()))
    return f"{_state(before)} → {_state(after)}"


@app.command("list")
def list_(
    ctx: typer.Context,
    after: int = typer.Option(0, "--after", help="Only entries after this sequence number."),
    limit: int = typer.Option(100, "--limit", "-n", min=1, help="Entries in this page."),
    kind: str | None = typer.Option(
        None,
        "--kind",
        "-k",
        help="Only entries about this kind of record: registered_model, model_version, "
        "model_alias, promotion_request, user, dataset_version, …",
    ),
    as_json: bool = JsonOption,
) -> None:
    """List audit entries, oldest first, a page at a time."""
    with errors_to_exit():
        entries = open_service(ctx, "audit").list(after=after, limit=limit, entity_kind=kind)
    if as_json:
        emit_json([e.to_dict() for e in entries])
        return
    rows = [
        (
            e.seq,
            e.at.strftime("%Y-%m-%d %H:%M"),
            escape(e.actor),
            escape(e.action),
            escape(f"{e.entity_kind} {e.entity_id}"),
            escape(_change(e.before, e.after)),
        )
        for e in entries
    ]
    out = table(("seq", "at (UTC)", "who", "action", "record", "change"), rows)
    for column in (out.columns[1], out.columns[3]):
        column.no_wrap = True
    for column in (out.columns[4], out.columns[5]):
        column.overflow = "fold"  # ids wrap whole rather than end in "…"
    console.print(out)
    if len(entries) == limit:
        console.print(f"more: --after {entries[-1].seq}")


@app.command()
def verify(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Re-compute every entry's hash; exit 1 naming the first entry edited, removed or moved."""
    with errors_to_exit():
        audit = open_service(ctx, "audit")
        check = audit.verify()
        entry: AuditEntry | None = None
        if check.broken_at is not None:
            # Show the stored entry when there is one (a removed entry has none).
            found = audit.list(after=check.broken_at - 1, limit=1)
            entry = found[0] if found and found[0].seq == check.broken_at else None
    if as_json:
        emit_json(
            {
                "ok": check.ok,
                "entries": check.entries,
                "broken_at": check.broken_at,
                "reason": check.reason,
                "entry": entry.to_dict() if entry else None,
            }
        )
    elif check.ok:
        console.print(f"[green]audit log intact[/green]: {check.entries} entries chain")
    else:
        console.print(
            f"[red]audit log broken at entry {check.broken_at}[/red]: {escape(check.reason or '')}"
        )
        if entry is not None:
            console.print(
                kv_table(
                    {
                        "seq": entry.seq,
                        "at": entry.at.isoformat(),
                        "who": escape(entry.actor),
                        "action": escape(entry.action),
                        "record": escape(f"{entry.entity_kind} {entry.entity_id}"),
                        "before": escape(_state(entry.before)),
                        "after": escape(_state(entry.after)),
                        "hash": entry.hash,
                    }
                )
            )
    if not check.ok:
        raise typer.Exit(1)

"""``shipyard fsck`` and ``shipyard gc``."""

from __future__ import annotations

from datetime import timedelta

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shipyard.cli.context import JsonOption, open_project
from shipyard.cli.output import console, emit_json, errors_to_exit, table

__all__ = ["fsck", "gc"]


def fsck(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Re-hash every blob and check every metadata reference; exit 1 on any problem."""
    with errors_to_exit():
        project = open_project(ctx, migrate=False)
        columns = (TextColumn("checking blobs"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, TimeElapsedColumn(), console=console, disable=as_json) as bar:
            task = bar.add_task("fsck", total=None)

            def progress(done: int, total: int | None) -> None:
                bar.update(task, completed=done, total=total)

            report = project.maintenance.fsck(progress=progress)
    if as_json:
        emit_json(report.to_dict())
    else:
        console.print(
            f"checked {report.blobs_checked} blobs and {report.references_checked} references"
        )
        rows = [("corrupt blob", c["digest"], f"hashes to {c['actual']}") for c in report.corrupt]
        rows += [("missing blob", d, "referenced by metadata") for d in report.missing]
        rows += [("database", "", problem) for problem in report.database]
        rows += [("schema", rev, "migration pending") for rev in report.schema_pending]
        if rows:
            console.print(table(("problem", "what", "detail"), rows, title="fsck problems"))
        else:
            console.print("[green]no problems found[/green]")
    if not report.ok:
        raise typer.Exit(1)


def gc(
    ctx: typer.Context,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Only list the blobs nothing references; delete nothing."
    ),
    grace_minutes: float = typer.Option(
        60.0, "--grace", help="Keep unreferenced blobs younger than this many minutes.", min=0
    ),
    as_json: bool = JsonOption,
) -> None:
    """Delete (or with --dry-run, list) blobs that no metadata references."""
    with errors_to_exit():
        report = open_project(ctx).maintenance.gc(
            dry_run=dry_run, grace=timedelta(minutes=grace_minutes)
        )
    if as_json:
        emit_json(report.to_dict())
        return
    for digest in report.unreferenced:
        console.print(f"{'would delete' if dry_run else 'unreferenced'} {digest}")
    verb = "can be freed" if dry_run else f"unreferenced, {len(report.deleted)} deleted"
    console.print(
        f"{len(report.unreferenced)} blobs ({report.bytes:,} bytes) {verb}; "
        f"{report.stale_temporaries} abandoned staged writes"
    )

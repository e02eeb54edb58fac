"""``shipyard data``: add, list, show, get, label, validate and diff dataset versions."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markdown import Markdown
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from shipyard.cli.context import JsonOption, open_datasets
from shipyard.cli.output import console, emit_json, errors_to_exit, fail, kv_table, table
from shipyard.domain.datasets import DatasetVersion
from shipyard.domain.profiles import TableProfile

__all__ = ["app"]

app = typer.Typer(
    help="Store, version, describe, validate and diff datasets.", no_args_is_help=True
)


def _parse_tags(values: list[str]) -> dict[str, str]:
    tags = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            fail(f"--tag {value!r}: write the tag as KEY=VALUE")
        tags[key] = text
    return tags


@app.command()
def add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Dataset name."),
    source: str | None = typer.Argument(
        None, help="File, folder, http(s) URL or fsspec URL (s3://…)."
    ),
    sql: str | None = typer.Option(None, "--sql", help="SQL query to run instead of a SOURCE."),
    db: str | None = typer.Option(None, "--db", help="SQLAlchemy URL the --sql query runs on."),
    description: str | None = typer.Option(None, "--description", "-d", help="Markdown."),
    owner: str | None = typer.Option(None, "--owner", help="Who answers for the data."),
    license_: str | None = typer.Option(None, "--license", help="The data's license."),
    tag: list[str] = typer.Option([], "--tag", help="KEY=VALUE tag for the card; repeatable."),
    key: list[str] = typer.Option([], "--key", help="Column identifying a row; repeatable."),
    fmt: str | None = typer.Option(
        None, "--format", help="Force the table format: csv, parquet, jsonl or arrow."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Add a version of a dataset; nothing new is made when the content is unchanged."""
    tags = _parse_tags(tag)
    with errors_to_exit():
        datasets = open_datasets(ctx)
        columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, disable=as_json, transient=True) as bar:
            tasks: dict[str, TaskID] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total or None)
                bar.update(tasks[stage], completed=done, total=total or None)

            result = datasets.add(
                name,
                source,
                sql=sql,
                db=db,
                description=description,
                owner=owner,
                license=license_,
                tags=tags,
                key=key,
                format=fmt,
                progress=progress,
            )
    if as_json:
        emit_json(result.to_dict())
        return
    version = result.version
    if result.created:
        console.print(
            f"[green]added {version.ref}[/green]: {version.file_count} file(s), "
            f"{version.bytes:,} bytes"
            + (f", {version.rows:,} rows" if version.rows is not None else "")
            + f"; {result.new_bytes:,} new bytes stored"
        )
    else:
        console.print(f"unchanged: the content is already {version.ref}; nothing new stored")


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List datasets with their latest version."""
    with errors_to_exit():
        found = open_datasets(ctx).list()
    if as_json:
        emit_json([d.to_dict() for d in found])
        return
    rows = [
        (d.name, d.latest, d.versions, d.updated_at.strftime("%Y-%m-%d %H:%M"), d.description)
        for d in found
    ]
    console.print(table(("name", "latest", "versions", "updated (UTC)", "description"), rows))


@app.command()
def versions(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Dataset name."),
    as_json: bool = JsonOption,
) -> None:
    """List every version of a dataset."""
    with errors_to_exit():
        found = open_datasets(ctx).versions(name)
    if as_json:
        emit_json([v.to_dict() for v in found])
        return
    rows = [
        (
            v.ref,
            v.kind + (f" ({v.format})" if v.format else ""),
            v.file_count,
            f"{v.bytes:,}",
            "" if v.rows is None else f"{v.rows:,}",
            v.created_at.strftime("%Y-%m-%d %H:%M"),
            v.created_by,
        )
        for v in found
    ]
    console.print(table(("version", "kind", "files", "bytes", "rows", "created (UTC)", "by"), rows))


@app.command()
def show(
    ctx: typer.Context,
    reference: str = typer.Argument(..., help="NAME@VERSION, NAME@latest or NAME@LABEL."),
    html: Path | None = typer.Option(
        None, "--html", help="Also write a self-contained HTML report with plots."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Show a version's card, schema and column profiles."""
    with errors_to_exit():
        datasets = open_datasets(ctx)
        version = datasets.resolve(reference)
        profile = datasets.profile(version)
        if html is not None:
            datasets.write_report(version, html)
    if as_json:
        emit_json({"version": version.to_dict(), "profile": profile.to_dict() if profile else None})
        return
    _render_card(version)
    if profile is not None:
        _render_profile(profile)
    else:
        files = datasets.manifest(version)
        rows = [(f.path, f"{f.size:,}", f.digest[:19] + "…") for f in files[:50]]
        console.print(table(("file", "bytes", "digest"), rows, title=f"{len(files)} file(s)"))
    if html is not None:
        console.print(f"wrote {html}")


def _render_card(version: DatasetVersion) -> None:
    card = version.card
    console.print(f"[bold]{version.ref}[/bold]")
    if card.description:
        console.print(Markdown(card.description))
    console.print(
        kv_table(
            {
                "kind": version.kind + (f" ({version.format})" if version.format else ""),
                "files": version.file_count,
                "bytes": f"{version.bytes:,}",
                "rows": "" if version.rows is None else f"{version.rows:,}",
                "key": ", ".join(version.key_columns),
                "owner": card.owner,
                "license": card.license,
                "source": card.source_uri,
                "fetched": card.fetched_at.isoformat() if card.fetched_at else None,
                "tags": ", ".join(f"{k}={v}" for k, v in card.tags.items()),
                "parent": f"{version.name}@{version.parent}" if version.parent else None,
                "created": f"{version.created_at.isoformat()} by {version.created_by}",
                "content": version.content_digest,
            }
        )
    )


def _fmt(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _render_profile(profile: TableProfile) -> None:
    rows = []
    for column in profile.columns:
        top = ", ".join(f"{v} ({n})" for v, n in column.top[:3])
        rows.append(
            (
                column.name,
                column.type,
                f"{column.na_share:.1%}",
                _fmt(column.distinct) + ("~" if column.distinct_approx else ""),
                _fmt(column.min),
                _fmt(column.mean),
                _fmt(column.std),
                _fmt(column.max),
                top,
            )
        )
    console.print(
        table(
            ("column", "type", "NA", "distinct", "min", "mean", "std", "max", "top values"),
            rows,
            title=f"profile: {profile.rows:,} rows"
            + (
                f" (~ estimated from a sample of {profile.sample_rows:,} rows)"
                if profile.sample_rows is not None
                else ""
            ),
        )
    )


@app.command()
def get(
    ctx: typer.Context,
    reference: str = typer.Argument(..., help="NAME@VERSION, NAME@latest or NAME@LABEL."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder to write the files into."),
    as_json: bool = JsonOption,
) -> None:
    """Write a version's files into a folder, each verified against its digest."""
    with errors_to_exit():
        datasets = open_datasets(ctx)
        version = datasets.resolve(reference)
        written = datasets.export(version, output)
    if as_json:
        emit_json({"ref": version.ref, "files": [str(p) for p in written]})
    else:
        console.print(f"wrote {len(written)} file(s) of {version.ref} to {output}")


@app.command()
def label(
    ctx: typer.Context,
    reference: str = typer.Argument(..., help="The version to label, NAME@VERSION."),
    name: str = typer.Argument(..., help="The label, such as 'training' or 'golden'."),
    as_json: bool = JsonOption,
) -> None:
    """Point NAME@LABEL at a version; moves the label if it pointed elsewhere."""
    with errors_to_exit():
        version = open_datasets(ctx).label(reference, name)
    if as_json:
        emit_json({"label": f"{version.name}@{name}", "version": version.ref})
    else:
        console.print(f"{version.name}@{name} -> {version.ref}")


@app.command()
def validate(
    ctx: typer.Context,
    reference: str = typer.Argument(..., help="NAME@VERSION, NAME@latest or NAME@LABEL."),
    checks: Path = typer.Option(..., "--checks", "-c", help="TOML file of [[checks]]."),
    as_json: bool = JsonOption,
) -> None:
    """Run declarative checks against a version; exit 1 if an error-severity check fails."""
    with errors_to_exit():
        report = open_datasets(ctx).validate(reference, checks)
    if as_json:
        emit_json(report.to_dict())
    else:
        rows = []
        for result in report.results:
            if result.passed:
                mark = "[green]pass[/green]"
            elif result.check.severity == "warning":
                mark = "[yellow]warn[/yellow]"
            else:
                mark = "[red]FAIL[/red]"
            examples = ", ".join(str(e) for e in result.examples[:3])
            rows.append((mark, result.check.name, result.message, examples))
        console.print(table(("", "check", "result", "examples"), rows, title=report.reference))
        failed = len(report.failures)
        console.print(
            f"[red]{failed} check(s) failed[/red]" if failed else "[green]all checks pass[/green]"
        )
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def diff(
    ctx: typer.Context,
    old: str = typer.Argument(..., help="The reference version, NAME@V."),
    new: str = typer.Argument(..., help="The version to compare, NAME@V."),
    key: list[str] = typer.Option([], "--key", help="Column identifying a row; repeatable."),
    html: Path | None = typer.Option(None, "--html", help="Also write an HTML report."),
    as_json: bool = JsonOption,
) -> None:
    """Show what changed between two versions: files, schema, rows and statistics."""
    with errors_to_exit():
        datasets = open_datasets(ctx)
        result = datasets.diff(old, new, key=key)
        if html is not None:
            from shipyard.services.reports import render_diff_html

            html.parent.mkdir(parents=True, exist_ok=True)
            html.write_text(render_diff_html(result), encoding="utf-8")
    if as_json:
        emit_json(result.to_dict())
        return
    console.print(f"[bold]{result.old} → {result.new}[/bold]")
    if result.same_content:
        console.print("same content")
    if result.files:
        files = [(f.change, f.path, f.old_size, f.new_size) for f in result.files[:50]]
        console.print(table(("change", "file", "old bytes", "new bytes"), files, title="files"))
    if result.schema:
        schema = [(c.change, c.name, c.old_type, c.new_type) for c in result.schema]
        console.print(table(("change", "column", "old type", "new type"), schema, title="schema"))
    if result.rows is not None:
        r = result.rows
        matched = ", ".join(r.key) if r.key else "whole rows"
        console.print(
            f"rows {result.rows_old:,} → {result.rows_new:,} (matched by {matched}): "
            f"[green]+{r.added:,} added[/green], [red]-{r.removed:,} removed[/red], "
            f"[yellow]~{r.changed:,} changed[/yellow], {r.unchanged:,} unchanged"
        )
        for kind, samples in r.samples.items():
            for sample in samples[:3]:
                text = str(sample)
                console.print(
                    f"  {kind}: {text[:140]}{'…' if len(text) > 140 else ''}", markup=False
                )
    if result.columns:
        columns = [
            (
                c.name,
                _fmt(c.mean_old),
                _fmt(c.mean_new),
                _fmt(c.mean_shift),
                f"{c.na_old:.1%} → {c.na_new:.1%}",
                _fmt(c.psi),
            )
            for c in result.columns
        ]
        console.print(
            table(
                ("column", "old mean", "new mean", "shift (std)", "NA", "PSI"),
                columns,
                title="columns",
            )
        )
    if html is not None:
        console.print(f"wrote {html}")

"""``shipyard models``: list, show and describe models, move aliases and stages, and approve."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import typer
from rich.markup import escape

from shipyard.cli.context import JsonOption, open_service, open_services
from shipyard.cli.output import console, emit_json, errors_to_exit, fail, kv_table, table
from shipyard.domain.models import ModelVersion, PromotionRequest, RegisteredModel
from shipyard.services.run_reports import short_id

__all__ = ["app"]

app = typer.Typer(
    help="The model registry: versions, aliases, stages and approved promotions.",
    no_args_is_help=True,
)

_VersionRef = typer.Argument(..., help="NAME@VERSION, NAME@latest, NAME@ALIAS or NAME@STAGE.")
_RequestId = typer.Argument(..., help="The request id `shipyard models requests` shows.")
_STATUS_COLORS = {"pending": "cyan", "approved": "green", "rejected": "yellow"}
_Comment = typer.Option(None, "--comment", "-m", help="Why: kept with the decision.")


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M")


def _onnx(version: ModelVersion) -> str:
    diff = version.onnx_max_diff
    text = version.onnx_status + ("" if diff is None else f" (max diff {diff:.3g})")
    return text + (f": {version.onnx_reason}" if version.onnx_reason else "")


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List registered models with their latest version and aliases."""
    with errors_to_exit():
        found = open_service(ctx, "registry").models()
    if as_json:
        emit_json([m.to_dict() for m in found])
        return
    rows = [
        (
            escape(m.name),
            m.latest_version,
            escape(", ".join(f"{a}→{v}" for a, v in sorted(m.aliases.items()))),
            _when(m.created_at),
            escape(m.description or ""),
            escape(_tags(m.tags)),
        )
        for m in found
    ]
    console.print(
        table(("name", "latest", "aliases", "created (UTC)", "description", "tags"), rows)
    )


@app.command()
def describe(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    description: str | None = typer.Option(
        None, "--description", "-d", help="The model's description; '' clears it."
    ),
    tag: list[str] = typer.Option(
        [], "--tag", help="KEY=VALUE tag to set; KEY= removes it. Repeatable."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Set a registered model's description and tags (merged); without options, show them."""
    tags = _parse_tags(tag)
    with errors_to_exit():
        registry = open_service(ctx, "registry")
        if description is None and not tags:
            found = registry.model(name)
        else:
            found = registry.update_model(name, description=description, tags=tags)
    if as_json:
        emit_json(found.to_dict())
        return
    _print_model(found)


def _parse_tags(values: list[str]) -> dict[str, str | None]:
    tags: dict[str, str | None] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            fail(f"--tag {value!r}: write the tag as KEY=VALUE (KEY= removes it)")
        tags[key] = text or None
    return tags


def _tags(tags: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))


def _print_model(model: RegisteredModel) -> None:
    console.print(f"[bold]{escape(model.name)}[/bold]")
    console.print(
        kv_table(
            {
                "description": escape(model.description or ""),
                "tags": escape(_tags(model.tags)),
                "latest": "" if model.latest_version is None else str(model.latest_version),
                "aliases": escape(", ".join(f"{a}→{v}" for a, v in sorted(model.aliases.items()))),
                "created": f"{model.created_at.isoformat()} by {escape(model.created_by)}",
            }
        )
    )


@app.command()
def versions(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    as_json: bool = JsonOption,
) -> None:
    """List every version of a model with its flavor, stage, aliases and ONNX status."""
    with errors_to_exit():
        found = open_service(ctx, "registry").versions(name)
    if as_json:
        emit_json([v.to_dict() for v in found])
        return
    rows = [
        (
            escape(v.ref),
            v.flavor,
            v.stage,
            escape(", ".join(v.aliases)),
            v.onnx_status,
            short_id(v.run_id) if v.run_id else "",
            _when(v.created_at),
            escape(v.created_by),
        )
        for v in found
    ]
    console.print(
        table(("version", "flavor", "stage", "aliases", "onnx", "run", "created (UTC)", "by"), rows)
    )


@app.command()
def show(ctx: typer.Context, reference: str = _VersionRef, as_json: bool = JsonOption) -> None:
    """Show a version: signature, requirements, ONNX export, stage, aliases, run and files."""
    with errors_to_exit():
        project = open_services(ctx)
        version = project.registry.resolve(reference)
        files = project.models.files(version)
        model = project.registry.model(version.name)
    if as_json:
        emit_json({**version.to_dict(), "files": files, "model": model.to_dict()})
        return
    console.print(f"[bold]{escape(version.ref)}[/bold] ({version.flavor})")
    console.print(
        kv_table(
            {
                "stage": version.stage,
                "aliases": escape(", ".join(version.aliases)),
                "run": version.run_id,
                "onnx": escape(_onnx(version)),
                "requirements": escape(", ".join(version.requirements)),
                "description": escape(version.description or ""),
                "tags": escape(", ".join(f"{k}={v}" for k, v in version.tags.items())),
                "model description": escape(model.description or ""),
                "model tags": escape(_tags(model.tags)),
                "created": f"{version.created_at.isoformat()} by {escape(version.created_by)}",
                "manifest": version.manifest_digest,
            }
        )
    )
    if version.signature is not None:
        columns = [
            (direction, escape(c.name), c.type, "yes" if c.nullable else "")
            for direction, specs in (
                ("input", version.signature.inputs),
                ("output", version.signature.outputs),
            )
            for c in specs
        ]
        console.print(table(("", "column", "type", "nullable"), columns, title="signature"))
    rows = [(escape(f["path"]), f"{f['size']:,}", f["digest"][:19] + "…") for f in files]
    console.print(table(("file", "bytes", "digest"), rows, title=f"{len(files)} file(s)"))


@app.command()
def alias(
    ctx: typer.Context,
    reference: str = _VersionRef,
    name: str = typer.Argument(..., help="The alias, such as 'challenger'."),
    as_json: bool = JsonOption,
) -> None:
    """Point NAME@ALIAS at a version; protected aliases need `models request` instead."""
    with errors_to_exit():
        version = open_service(ctx, "registry").set_alias(reference, name)
    if as_json:
        emit_json(version.to_dict())
    else:
        console.print(f"{escape(version.name)}@{escape(name)} -> {escape(version.ref)}")


@app.command()
def stage(
    ctx: typer.Context,
    reference: str = _VersionRef,
    name: str = typer.Argument(..., help="none, staging, production or archived."),
    as_json: bool = JsonOption,
) -> None:
    """Move a version to a stage; protected stages need `models request` instead."""
    with errors_to_exit():
        version = open_service(ctx, "registry").set_stage(reference, name)
    if as_json:
        emit_json(version.to_dict())
    else:
        console.print(f"{escape(version.ref)} is in stage {version.stage}")


@app.command()
def request(
    ctx: typer.Context,
    reference: str = _VersionRef,
    to: str = typer.Option(..., "--to", help="The stage or alias wanted, such as 'production'."),
    reason: str | None = typer.Option(
        None, "--reason", "-r", help="Why; an approver reads it. Required."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Ask for a version to move to a (protected) stage or alias; an approver decides."""
    with errors_to_exit():
        # The service refuses an empty reason with a message naming --reason.
        made = open_service(ctx, "registry").request(reference, to, reason or "")
    if as_json:
        emit_json(made.to_dict())
    else:
        console.print(
            f"requested {escape(made.name)}@{made.version} -> {escape(made.target)}: "
            f"request {made.id}; an approver decides with "
            f"`shipyard models approve {made.id}`"
        )


@app.command()
def requests(
    ctx: typer.Context,
    all_: bool = typer.Option(False, "--all", "-a", help="Decided requests too, not only pending."),
    model: str | None = typer.Option(None, "--model", help="Only requests for this model."),
    as_json: bool = JsonOption,
) -> None:
    """List promotion requests, newest first: pending ones unless --all."""
    with errors_to_exit():
        found = open_service(ctx, "registry").requests(
            status=None if all_ else "pending", name=model
        )
    if as_json:
        emit_json([r.to_dict() for r in found])
        return
    if not found:
        console.print("no pending promotion requests" if not all_ else "no promotion requests")
    # A block per request, not a table: the id stays whole to copy into `models approve`.
    for r in found:
        color = _STATUS_COLORS.get(r.status, "white")
        console.print(
            f"[bold]{r.id}[/bold]  {escape(r.name)}@{r.version} -> {escape(r.target)}  "
            f"[{color}]{r.status}[/{color}]"
        )
        console.print(
            f"  requested by {escape(r.requested_by)} at {_when(r.requested_at)}: "
            f"{escape(r.reason)}"
        )
        if r.decided_by is not None:
            console.print(
                f"  {r.status} by {escape(r.decided_by)} at {_when(r.decided_at)}"
                + (f": {escape(r.comment)}" if r.comment else "")
            )


@app.command()
def approve(
    ctx: typer.Context,
    request_id: str = _RequestId,
    comment: str | None = _Comment,
    as_json: bool = JsonOption,
) -> None:
    """Approve a pending request and apply it (needs the approver role)."""
    with errors_to_exit():
        decided = open_service(ctx, "registry").approve(request_id, comment)
    _decided(decided, as_json)


@app.command()
def reject(
    ctx: typer.Context,
    request_id: str = _RequestId,
    comment: str | None = _Comment,
    as_json: bool = JsonOption,
) -> None:
    """Reject a pending request (needs the approver role)."""
    with errors_to_exit():
        decided = open_service(ctx, "registry").reject(request_id, comment)
    _decided(decided, as_json)


@app.command()
def cancel(
    ctx: typer.Context,
    request_id: str = _RequestId,
    as_json: bool = JsonOption,
) -> None:
    """Withdraw a pending request (its requester or an admin)."""
    with errors_to_exit():
        decided = open_service(ctx, "registry").cancel(request_id)
    _decided(decided, as_json)


def _decided(decided: PromotionRequest, as_json: bool) -> None:
    if as_json:
        emit_json(decided.to_dict())
        return
    color = _STATUS_COLORS.get(decided.status, "white")
    console.print(
        f"[{color}]{decided.status}[/{color}] {decided.id}: "
        f"{escape(decided.name)}@{decided.version} -> {escape(decided.target)} "
        f"(by {escape(decided.decided_by or '')})"
    )

"""``shipyard users``: create users and grant or revoke their roles."""

from __future__ import annotations

import typer
from rich.markup import escape

from shipyard.cli.context import JsonOption, open_service
from shipyard.cli.output import console, emit_json, errors_to_exit, table
from shipyard.services.users import User

__all__ = ["app"]

app = typer.Typer(
    help="Users and their roles: viewer, editor, approver, admin.", no_args_is_help=True
)

_Name = typer.Argument(..., help="User name (the SHIPYARD_USER they work as).")
_Roles = typer.Option([], "--role", "-r", help="viewer, editor, approver or admin; repeatable.")


def _print(verb: str, user: User, as_json: bool) -> None:
    if as_json:
        emit_json(user.to_dict())
    else:
        console.print(f"{verb} {escape(user.name)}: roles {', '.join(user.roles) or '(none)'}")


@app.command()
def create(
    ctx: typer.Context, name: str = _Name, role: list[str] = _Roles, as_json: bool = JsonOption
) -> None:
    """Create a user (default role viewer); the first user must be an admin, then admins do."""
    with errors_to_exit():
        users = open_service(ctx, "users")
        user = users.create(name, role) if role else users.create(name)
    _print("created", user, as_json)


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List users and their roles."""
    with errors_to_exit():
        found = open_service(ctx, "users").list()
    if as_json:
        emit_json([u.to_dict() for u in found])
        return
    rows = [
        (
            escape(u.name),
            ", ".join(u.roles),
            u.created_at.strftime("%Y-%m-%d %H:%M"),
            escape(u.created_by),
        )
        for u in found
    ]
    console.print(table(("name", "roles", "created (UTC)", "by"), rows))


@app.command()
def grant(
    ctx: typer.Context, name: str = _Name, role: list[str] = _Roles, as_json: bool = JsonOption
) -> None:
    """Give a user more roles (admins only)."""
    with errors_to_exit():
        user = open_service(ctx, "users").grant(name, role)
    _print("granted", user, as_json)


@app.command()
def revoke(
    ctx: typer.Context, name: str = _Name, role: list[str] = _Roles, as_json: bool = JsonOption
) -> None:
    """Take roles from a user (admins only)."""
    with errors_to_exit():
        user = open_service(ctx, "users").revoke(name, role)
    _print("revoked", user, as_json)

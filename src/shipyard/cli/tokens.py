"""``shipyard tokens``: API tokens for the server; the secret is shown once."""

from __future__ import annotations

import typer
from rich.markup import escape

from shipyard.cli.context import JsonOption, open_service
from shipyard.cli.output import console, emit_json, errors_to_exit, table
from shipyard.services.tokens import parse_duration

__all__ = ["app"]

app = typer.Typer(help="API tokens for the shipyard server (admins only).", no_args_is_help=True)


@app.command()
def create(
    ctx: typer.Context,
    user: str = typer.Argument(..., help="The user the token speaks for."),
    name: str = typer.Option("default", "--name", help="What the token is for (laptop, ci)."),
    expires: str | None = typer.Option(
        None, "--expires", help="Lifetime such as 90m, 12h, 30d or 2w (default: no expiry)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Create a token for USER and print its secret (shown this once)."""
    with errors_to_exit():
        lifetime = parse_duration(expires) if expires is not None else None
        token, secret = open_service(ctx, "tokens").create(user, name, expires_in=lifetime)
    if as_json:
        emit_json({**token.to_dict(), "secret": secret})
        return
    until = token.expires_at.strftime("%Y-%m-%d %H:%M UTC") if token.expires_at else "never"
    console.print(f"created token {token.id} for {escape(user)} (expires {until})")
    console.print("secret (shown once; set it as SHIPYARD_TOKEN):")
    typer.echo(secret)


@app.command("list")
def list_(
    ctx: typer.Context,
    user: str | None = typer.Option(None, "--user", help="Only this user's tokens."),
    as_json: bool = JsonOption,
) -> None:
    """List tokens (never their secrets)."""
    with errors_to_exit():
        found = open_service(ctx, "tokens").list(user)
    if as_json:
        emit_json([t.to_dict() for t in found])
        return

    def when(moment: object) -> str:
        return moment.strftime("%Y-%m-%d %H:%M") if hasattr(moment, "strftime") else "-"

    rows = [
        (
            t.id,
            escape(t.user),
            escape(t.name),
            t.prefix + "…",
            when(t.expires_at),
            "active" if t.active else ("revoked" if t.revoked_at else "expired"),
            when(t.last_used_at),
        )
        for t in found
    ]
    header = ("id", "user", "name", "prefix", "expires (UTC)", "state", "last used")
    console.print(table(header, rows))


@app.command()
def revoke(
    ctx: typer.Context,
    token_id: str = typer.Argument(..., metavar="ID", help="The token's id."),
    as_json: bool = JsonOption,
) -> None:
    """Revoke a token at once."""
    with errors_to_exit():
        token = open_service(ctx, "tokens").revoke(token_id)
    if as_json:
        emit_json(token.to_dict())
    else:
        console.print(f"revoked token {token.id} of {escape(token.user)}")

"""What every command shares: the project folder option and opening the project."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from shipyard.app import Shipyard, build
from shipyard.errors import NotSupportedError
from shipyard.settings import Settings, point_at_project

if TYPE_CHECKING:
    from shipyard.client import RemoteProject
    from shipyard.services.datasets import DatasetService

__all__ = [
    "CliState",
    "JsonOption",
    "load_settings",
    "open_datasets",
    "open_project",
    "open_remote_project",
    "open_service",
    "open_services",
    "state",
]

JsonOption = typer.Option(False, "--json", help="Print the result as JSON.")


@dataclass
class CliState:
    """Options given before the command name."""

    project: Path | None = None


def state(ctx: typer.Context) -> CliState:
    """The shared options of this invocation."""
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def load_settings(ctx: typer.Context) -> Settings:
    """Settings of the project the command works on."""
    return Settings.load(state(ctx).project)


def open_project(ctx: typer.Context, *, migrate: bool = True, remote_ok: bool = False) -> Shipyard:
    """Open the local project the command works on; closed when the command ends.

    Args:
        ctx: the command's context.
        migrate: apply pending metadata migrations.
        remote_ok: open the local project even when ``SHIPYARD_URI`` names a server (for
            commands about this machine, such as ``doctor``).

    Raises:
        NotSupportedError: when ``SHIPYARD_URI`` names a server and the command cannot work
            through it yet: it would otherwise act on a local project nobody meant.
    """
    settings = load_settings(ctx)
    if settings.server_uri and not remote_ok:
        raise NotSupportedError(
            f"remote mode (SHIPYARD_URI={settings.server_uri})",
            f"`{ctx.command_path}` yet: run it where the project is, or unset SHIPYARD_URI",
        )
    project = build(settings, migrate=migrate)
    ctx.call_on_close(project.close)
    if state(ctx).project is not None:  # -C: what the command runs opens this project too
        ctx.call_on_close(point_at_project(settings.root))
    return project


def open_remote_project(ctx: typer.Context) -> RemoteProject | None:
    """The server ``SHIPYARD_URI`` names, connected with ``SHIPYARD_TOKEN``; None when local."""
    from shipyard.client import open_remote

    remote = open_remote(load_settings(ctx))
    if remote is not None:
        ctx.call_on_close(remote.close)
    return remote


def open_datasets(ctx: typer.Context) -> DatasetService:
    """The dataset service of the server (remote mode) or of the local project."""
    found: DatasetService = open_service(ctx, "datasets")
    return found


def open_services(ctx: typer.Context) -> Any:
    """The server's services (remote mode) or the local project's (``.registry``, …)."""
    remote = open_remote_project(ctx)
    return remote if remote is not None else open_project(ctx)


def open_service(ctx: typer.Context, name: str) -> Any:
    """One service of the server (remote mode) or of the local project, by name.

    Raises:
        NotSupportedError: in remote mode, for a service the client does not cover yet.
    """
    found = open_services(ctx)
    if not hasattr(found, name):
        raise NotSupportedError(
            f"remote mode (SHIPYARD_URI={load_settings(ctx).server_uri})",
            f"`{ctx.command_path}` yet: run it where the project is, or unset SHIPYARD_URI",
        )
    return getattr(found, name)

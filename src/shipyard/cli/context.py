"""What every command shares: the project folder option and opening the project."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from shipyard.app import Shipyard, build
from shipyard.settings import Settings

__all__ = ["CliState", "JsonOption", "open_project", "state"]

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


def open_project(ctx: typer.Context, *, migrate: bool = True) -> Shipyard:
    """Open the project the command works on; closed when the command ends."""
    project = build(load_settings(ctx), migrate=migrate)
    ctx.call_on_close(project.close)
    return project

"""Projects: create the ``shipyard.toml`` and ``.shipyard/`` that make a folder a project."""

from __future__ import annotations

import textwrap
from pathlib import Path

from shipyard.errors import AlreadyExistsError, NotFoundError
from shipyard.settings import CONFIG_FILE, SETTINGS, STATE_DIR, Settings
from shipyard.stores.artifacts import open_blob_store
from shipyard.stores.metadata import SqlMetadataStore

__all__ = ["config_template", "init_project"]

_DEFAULTS = {
    "metadata_uri": f'"sqlite:///{STATE_DIR}/shipyard.db"',
    "artifact_uri": f'"{STATE_DIR}/artifacts"',
    "durability": '"full"',
    "executor": '"local"',
    "require_second_person": "true",
    "protected_stages": '["production"]',
    "protected_aliases": '["champion"]',
}


def config_template() -> str:
    """A commented ``shipyard.toml`` holding every setting, defaults active, others shown."""
    lines = [
        "# shipyard project settings. Every SHIPYARD_* environment variable named below",
        "# overrides the value here. Relative paths are relative to this file's folder.",
    ]
    section = None
    for spec in SETTINGS:
        if spec.section != section:
            section = spec.section
            lines += ["", f"[{section}]"]
        lines += textwrap.wrap(
            f"{spec.help} (env {spec.env})", 88, initial_indent="# ", subsequent_indent="# "
        )
        default = _DEFAULTS.get(spec.field)
        lines.append(f"{spec.key} = {default}" if default else f'# {spec.key} = ""')
    return "\n".join(lines) + "\n"


def init_project(path: Path | str, *, force: bool = False) -> Settings:
    """Make ``path`` a shipyard project: write shipyard.toml, create and migrate the stores.

    Args:
        path: an existing folder.
        force: overwrite an existing shipyard.toml.

    Returns:
        The new project's settings.

    Raises:
        NotFoundError: if the folder does not exist.
        AlreadyExistsError: if it holds a shipyard.toml already and ``force`` is false.
    """
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise NotFoundError(f"folder {root} does not exist")
    config = root / CONFIG_FILE
    if config.exists() and not force:
        raise AlreadyExistsError(
            f"{config} exists already; pass --force to overwrite it with the defaults"
        )
    tmp = config.with_name(f".{CONFIG_FILE}.tmp")
    tmp.write_text(config_template(), encoding="utf-8")
    tmp.replace(config)
    state = root / STATE_DIR
    state.mkdir(exist_ok=True)
    (state / ".gitignore").write_text("# shipyard's local stores\n*\n", encoding="utf-8")
    settings = Settings.load(root)
    SqlMetadataStore(settings.metadata_uri, durability=settings.durability).close()
    open_blob_store(settings.artifact_uri).close()
    return settings

"""Settings: the only place that reads ``shipyard.toml`` and ``SHIPYARD_*`` variables.

Precedence, strongest first: ``SHIPYARD_*`` environment variables, ``shipyard.toml`` at the
project root, built-in defaults. The project root is the nearest folder at or above the
working directory that holds ``shipyard.toml`` (or ``SHIPYARD_PROJECT``); without one, the
working directory, so the embedded defaults work with zero set-up.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from shipyard.errors import SettingsError

__all__ = [
    "CONFIG_FILE",
    "SETTINGS",
    "STATE_DIR",
    "SettingSpec",
    "Settings",
    "adopt_environment",
    "find_root",
    "point_at_project",
    "process_environment",
]

CONFIG_FILE = "shipyard.toml"
STATE_DIR = ".shipyard"


@dataclass(frozen=True, slots=True)
class SettingSpec:
    """Where one setting lives in shipyard.toml and the environment, and what it means."""

    field: str
    section: str
    key: str
    env: str
    help: str


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "metadata_uri",
        "store",
        "metadata",
        "SHIPYARD_METADATA_URI",
        "SQLAlchemy URL of the metadata store: sqlite:///path (relative to the project "
        "root) or postgresql+psycopg://user@host/db",
    ),
    SettingSpec(
        "artifact_uri",
        "store",
        "artifacts",
        "SHIPYARD_ARTIFACT_URI",
        "where blobs live: a folder (relative to the project root) or any fsspec URL "
        "such as s3://bucket/prefix or memory://name",
    ),
    SettingSpec(
        "durability",
        "store",
        "durability",
        "SHIPYARD_DURABILITY",
        "'full': every commit and blob is fsynced before a call returns (survives power "
        "loss); 'normal': written to the OS before a call returns (survives a crash of "
        "the process, not of the machine), faster",
    ),
    SettingSpec(
        "executor",
        "executor",
        "kind",
        "SHIPYARD_EXECUTOR",
        "where pipeline tasks run: 'local' or a Ray address ('ray', 'ray://host:port')",
    ),
    SettingSpec(
        "server_uri",
        "server",
        "uri",
        "SHIPYARD_URI",
        "URL of a shipyard server (http://host:port); when set the SDK and CLI work "
        "in remote mode against it",
    ),
    SettingSpec(
        "token",
        "server",
        "token",
        "SHIPYARD_TOKEN",
        "access token for the shipyard server; prefer the environment to the file",
    ),
    SettingSpec(
        "upload_limit",
        "server",
        "upload_limit",
        "SHIPYARD_UPLOAD_LIMIT",
        "the largest blob a client may upload to the server, in bytes",
    ),
    SettingSpec(
        "require_second_person",
        "registry",
        "require_second_person",
        "SHIPYARD_REQUIRE_SECOND_PERSON",
        "whether a promotion request must be approved by someone other than its requester",
    ),
    SettingSpec(
        "protected_stages",
        "registry",
        "protected_stages",
        "SHIPYARD_PROTECTED_STAGES",
        "stages a model version enters only through an approved request (comma-separated "
        "in the environment)",
    ),
    SettingSpec(
        "protected_aliases",
        "registry",
        "protected_aliases",
        "SHIPYARD_PROTECTED_ALIASES",
        "aliases that move only through an approved request (comma-separated in the environment)",
    ),
    SettingSpec(
        "user",
        "identity",
        "user",
        "SHIPYARD_USER",
        "who local-mode writes are recorded as; defaults to the operating-system user",
    ),
    SettingSpec(
        "notify",
        "notify",
        "sinks",
        "SHIPYARD_NOTIFY",
        "where every pipeline's success and failure events go: 'webhook:https://…', "
        "'email:a@b.c', '+failure' to filter (see docs/notifications.md; comma-separated "
        "in the environment)",
    ),
    SettingSpec(
        "notify_timeout",
        "notify",
        "timeout",
        "SHIPYARD_NOTIFY_TIMEOUT",
        "seconds one notification delivery attempt may take",
    ),
    SettingSpec("smtp_host", "notify", "smtp_host", "SHIPYARD_SMTP_HOST", "SMTP server for email"),
    SettingSpec("smtp_port", "notify", "smtp_port", "SHIPYARD_SMTP_PORT", "SMTP port"),
    SettingSpec(
        "smtp_from", "notify", "smtp_from", "SHIPYARD_SMTP_FROM", "sender address of emails"
    ),
    SettingSpec("smtp_user", "notify", "smtp_user", "SHIPYARD_SMTP_USER", "SMTP login name"),
    SettingSpec(
        "smtp_password",
        "notify",
        "smtp_password",
        "SHIPYARD_SMTP_PASSWORD",
        "SMTP password: set it in the environment only, never in the file",
    ),
    SettingSpec(
        "smtp_starttls",
        "notify",
        "smtp_starttls",
        "SHIPYARD_SMTP_STARTTLS",
        "upgrade the SMTP connection with STARTTLS before logging in",
    ),
    SettingSpec(
        "monitor_alerts",
        "monitoring",
        "alerts",
        "SHIPYARD_MONITOR_ALERTS",
        "alert rules checked after every monitor run, such as 'drift_share > 0.3' or "
        "'roc_auc < 0.8' (see docs/monitoring.md; comma-separated in the environment)",
    ),
    SettingSpec(
        "monitor_notify",
        "monitoring",
        "notify",
        "SHIPYARD_MONITOR_NOTIFY",
        "where monitoring alerts go, beside notify.sinks that ask for '+alert': "
        "'webhook:https://…' or 'email:a@b.c' (comma-separated in the environment)",
    ),
    SettingSpec(
        "retrain_pipeline",
        "monitoring",
        "retrain_pipeline",
        "SHIPYARD_RETRAIN_PIPELINE",
        "pipeline run on an alert ('file.py:flow' or 'package.module:flow'); none: no retraining",
    ),
    SettingSpec(
        "retrain_param",
        "monitoring",
        "retrain_param",
        "SHIPYARD_RETRAIN_PARAM",
        "the retraining pipeline's parameter that receives the new dataset reference",
    ),
    SettingSpec(
        "retrain_dataset",
        "monitoring",
        "retrain_dataset",
        "SHIPYARD_RETRAIN_DATASET",
        "dataset the alerting window is added to as a new version (default: MODEL-monitored)",
    ),
    SettingSpec(
        "promote_to",
        "monitoring",
        "promote_to",
        "SHIPYARD_PROMOTE_TO",
        "stage or alias a retrained model version is requested for (an approver decides)",
    ),
)
# Secrets that shipyard.toml may not hold (it is usually committed).
_ENV_ONLY = frozenset({"smtp_password"})
_BY_SECTION = {(spec.section, spec.key): spec for spec in SETTINGS}
_LISTS = frozenset(
    {"protected_stages", "protected_aliases", "notify", "monitor_alerts", "monitor_notify"}
)


class Settings(BaseModel):
    """Validated settings of one project.

    Use ``Settings.load()`` to read them; paths in the result are absolute.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    root: Path
    metadata_uri: str
    artifact_uri: str
    durability: Literal["full", "normal"] = "full"
    executor: str = "local"
    server_uri: str | None = None
    token: str | None = None
    upload_limit: int = 10 * 1024**3
    user: str | None = None
    require_second_person: bool = True
    protected_stages: tuple[str, ...] = ("production",)
    protected_aliases: tuple[str, ...] = ("champion",)
    notify: tuple[str, ...] = ()
    notify_timeout: float = 5.0
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_from: str | None = None
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    monitor_alerts: tuple[str, ...] = ()
    monitor_notify: tuple[str, ...] = ()
    retrain_pipeline: str | None = None
    retrain_param: str = "dataset"
    retrain_dataset: str | None = None
    promote_to: str | None = "production"
    # [schedules.NAME] tables of shipyard.toml as (NAME, JSON of the table), so settings
    # stay immutable and hashable; the schedule service checks them.
    schedules: tuple[tuple[str, str], ...] = ()

    @property
    def state_dir(self) -> Path:
        """The project's ``.shipyard`` folder."""
        return self.root / STATE_DIR

    @property
    def config_file(self) -> Path:
        """The project's ``shipyard.toml``."""
        return self.root / CONFIG_FILE

    @classmethod
    def load(
        cls,
        start: Path | str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        **overrides: str | None,
    ) -> Settings:
        """Read settings for the project at or above ``start``.

        Args:
            start: folder to search from; defaults to ``SHIPYARD_PROJECT`` or the working
                directory.
            env: environment to read ``SHIPYARD_*`` from; defaults to ``os.environ``.
            **overrides: field values that win over everything else (CLI options).

        Returns:
            The validated settings.

        Raises:
            SettingsError: if shipyard.toml is malformed or holds an unknown or bad value.
        """
        env = os.environ if env is None else env
        if start is None:
            start = env.get("SHIPYARD_PROJECT") or Path.cwd()
        root = find_root(Path(start))
        values: dict[str, object] = {}
        config = root / CONFIG_FILE
        if config.is_file():
            values.update(_read_config(config))
        for spec in SETTINGS:
            if env.get(spec.env):
                text = env[spec.env]
                values[spec.field] = (
                    tuple(p.strip() for p in text.split(",") if p.strip())
                    if spec.field in _LISTS
                    else text
                )
        values.update({k: v for k, v in overrides.items() if v is not None})
        values.setdefault("metadata_uri", f"sqlite:///{STATE_DIR}/shipyard.db")
        values.setdefault("artifact_uri", f"{STATE_DIR}/artifacts")
        values["metadata_uri"] = _absolute_sqlite(str(values["metadata_uri"]), root)
        values["artifact_uri"] = _absolute_location(str(values["artifact_uri"]), root)
        try:
            return cls(root=root, **values)  # type: ignore[arg-type]
        except ValidationError as exc:
            error = exc.errors()[0]
            field = str(error["loc"][0]) if error["loc"] else "?"
            raise SettingsError(field, error["msg"]) from None


def process_environment() -> dict[str, str]:
    """A copy of this process's environment, for a child process that runs its work.

    A task's process is forked from a server started earlier; it is given the environment
    of now (``SHIPYARD_URI`` set since, say), as a child process would inherit it.
    """
    return dict(os.environ)


def adopt_environment(env: Mapping[str, str]) -> None:
    """Make ``env`` this process's environment (in a task's process, the driver's)."""
    os.environ.clear()
    os.environ.update(env)


def point_at_project(root: Path) -> Callable[[], None]:
    """Set ``SHIPYARD_PROJECT`` to ``root`` in this process; returns what puts it back.

    For a command given ``-C``: the pipelines it runs (task threads, and task processes,
    which inherit the environment) then open the same project when they call
    ``shipyard.connect()``, wherever the working directory is.
    """
    before = os.environ.get("SHIPYARD_PROJECT")
    os.environ["SHIPYARD_PROJECT"] = str(root)

    def restore() -> None:
        if before is None:
            os.environ.pop("SHIPYARD_PROJECT", None)
        else:
            os.environ["SHIPYARD_PROJECT"] = before

    return restore


def find_root(start: Path) -> Path:
    """Return the nearest folder at or above ``start`` holding shipyard.toml, else ``start``."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    return start


def _read_config(path: Path) -> dict[str, object]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(str(path), f"not valid TOML: {exc}") from None
    values: dict[str, object] = {}
    for section, table in data.items():
        if not isinstance(table, dict):
            raise SettingsError(f"{path.name}: {section}", "expected a [section] table")
        if section == "schedules":
            values["schedules"] = _read_schedules(table)
            continue
        for key, value in table.items():
            spec = _BY_SECTION.get((section, key))
            if spec is not None and spec.field in _ENV_ONLY:
                raise SettingsError(
                    f"{section}.{key}", f"a secret: set {spec.env} in the environment instead"
                )
            if spec is None:
                known = ", ".join(f"{s.section}.{s.key}" for s in SETTINGS)
                raise SettingsError(f"{section}.{key}", f"unknown setting; known: {known}")
            values[spec.field] = value
    return values


def _read_schedules(table: dict[str, object]) -> tuple[tuple[str, str], ...]:
    schedules = []
    for name, spec in table.items():
        if not isinstance(spec, dict):
            raise SettingsError(
                f"schedules.{name}",
                "expected a table: [schedules.NAME] with target = 'file.py:flow' and cron "
                "= '0 3 * * *' or every = '1h'",
            )
        try:
            schedules.append((name, json.dumps(spec, sort_keys=True)))
        except TypeError as exc:  # a TOML date or time where none belongs
            raise SettingsError(
                f"schedules.{name}", f"holds a value of the wrong type: {exc}"
            ) from None
    return tuple(schedules)


def _absolute_sqlite(uri: str, root: Path) -> str:
    prefix = "sqlite:///"
    if uri.startswith(prefix) and uri != "sqlite:///:memory:":
        path = uri[len(prefix) :]
        if not path.startswith("/"):
            return prefix + str(root / path)
    return uri


def _absolute_location(uri: str, root: Path) -> str:
    if "://" in uri:
        if uri.startswith("file://"):
            return str(Path(uri[len("file://") :]).resolve())
        return uri
    path = Path(uri).expanduser()
    return str(path if path.is_absolute() else root / path)

"""Table definitions of the metadata store (SQLAlchemy Core), at the newest migration.

Columns that hold blob digests carry ``info={"digest": True}``; ``fsck`` and ``gc`` find
every referenced blob through them, so a new table that references blobs only has to mark
its column.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from typing_extensions import override

from shipyard.domain.ids import as_utc

__all__ = [
    "DIGEST",
    "ID",
    "NAME",
    "UtcDateTime",
    "api_tokens",
    "audit_log",
    "dataset_labels",
    "dataset_versions",
    "datasets",
    "deployment_counts",
    "deployments",
    "digest_columns",
    "experiments",
    "lineage_edges",
    "metadata",
    "metric_chunks",
    "metric_latest",
    "model_aliases",
    "model_versions",
    "monitor_runs",
    "object_chunks",
    "objects",
    "pipeline_runs",
    "prediction_batches",
    "prediction_feedback",
    "promotion_requests",
    "registered_models",
    "run_artifacts",
    "run_params",
    "run_tags",
    "runs",
    "schedules",
    "schema_history",
    "task_runs",
    "users",
]

ID = 32  # UUIDv7 as hex
NAME = 128
DIGEST = 71  # "blake3:" + 64 hex digits


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that goes in and comes out as an aware UTC datetime on every database."""

    impl = DateTime(timezone=True)
    cache_ok = True

    @override
    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    @override
    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

schema_history = Table(
    "schema_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("revision", String(64), nullable=False),
    Column("applied_at", UtcDateTime(), nullable=False),
    Column("applied_by", String(NAME), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
)

lineage_edges = Table(
    "lineage_edges",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("from_kind", String(32), nullable=False),
    Column("from_id", String(255), nullable=False),
    Column("to_kind", String(32), nullable=False),
    Column("to_id", String(255), nullable=False),
    Column("relation", String(32), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(NAME), nullable=False),
    UniqueConstraint("from_kind", "from_id", "to_kind", "to_id", "relation"),
    Index(None, "to_kind", "to_id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(NAME), nullable=False),
    Column("action", String(64), nullable=False),
    Column("entity_kind", String(32), nullable=False),
    Column("entity_id", String(255), nullable=False),
    Column("before", Text, nullable=True),
    Column("after", Text, nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
    Index(None, "entity_kind", "entity_id"),
)


objects = Table(
    "objects",
    metadata,
    Column("digest", String(DIGEST), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("storage", String(8), nullable=False),  # blob | pack | chunks
    Column("blob", String(DIGEST), nullable=True, info={"digest": True}),
    Column("offset", BigInteger, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

object_chunks = Table(
    "object_chunks",
    metadata,
    Column("object", String(DIGEST), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("chunk", String(DIGEST), nullable=False, info={"digest": True}),
    Column("size", BigInteger, nullable=False),
)

datasets = Table(
    "datasets",
    metadata,
    Column("name", String(NAME), primary_key=True),
    Column("description", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(NAME), nullable=False),
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(NAME), nullable=False),
    Column("version", Integer, nullable=False),
    Column("content_digest", String(DIGEST), nullable=False),
    Column("manifest", String(DIGEST), nullable=False, info={"digest": True}),
    Column("kind", String(8), nullable=False),  # table | files
    Column("format", String(16), nullable=True),
    Column("file_count", Integer, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("rows", BigInteger, nullable=True),
    Column("schema", Text, nullable=True),
    Column("profile", String(DIGEST), nullable=True, info={"digest": True}),
    Column("description", Text, nullable=True),
    Column("owner", String(NAME), nullable=True),
    Column("license", String(NAME), nullable=True),
    Column("source_uri", Text, nullable=True),
    Column("fetched_at", UtcDateTime(), nullable=True),
    Column("tags", Text, nullable=False),
    Column("key_columns", Text, nullable=True),
    Column("parent", Integer, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(NAME), nullable=False),
    UniqueConstraint("name", "version"),
    Index(None, "name", "content_digest"),
)

dataset_labels = Table(
    "dataset_labels",
    metadata,
    Column("name", String(NAME), primary_key=True),
    Column("label", String(NAME), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("updated_by", String(NAME), nullable=False),
)


experiments = Table(
    "experiments",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(NAME), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(NAME), nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("experiment_id", String(ID), nullable=False),
    Column("name", String(255), nullable=False),
    Column("parent_id", String(ID), nullable=True),
    Column("status", String(16), nullable=False),
    Column("user", String(NAME), nullable=False),
    Column("start_time", UtcDateTime(), nullable=False),
    Column("end_time", UtcDateTime(), nullable=True),
    Column("heartbeat_at", UtcDateTime(), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("environment", Text, nullable=True),
    Column("resources", Text, nullable=True),
    Index(None, "experiment_id", "start_time"),
    Index(None, "parent_id"),
    Index(None, "status"),  # searches and reads reap the running runs first
)

run_params = Table(
    "run_params",
    metadata,
    Column("run_id", String(ID), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
    Index(None, "key", "value"),
)

run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", String(ID), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)

metric_latest = Table(
    "metric_latest",
    metadata,
    Column("run_id", String(ID), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Float, nullable=True),  # NULL stands for NaN, which SQL cannot order
    Column("is_nan", Boolean, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", Float, nullable=False),
    Column("min_value", Float, nullable=True),
    Column("max_value", Float, nullable=True),
    Column("count", BigInteger, nullable=False),
    Index(None, "key", "value"),
)

metric_chunks = Table(
    "metric_chunks",
    metadata,
    Column("run_id", String(ID), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("count", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
)

run_artifacts = Table(
    "run_artifacts",
    metadata,
    Column("run_id", String(ID), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("digest", String(DIGEST), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)


users = Table(
    "users",
    metadata,
    Column("name", String(NAME), primary_key=True),
    Column("roles", Text, nullable=False),  # JSON list
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(NAME), nullable=False),
)

registered_models = Table(
    "registered_models",
    metadata,
    Column("name", String(NAME), primary_key=True),
    Column("description", Text, nullable=True),
    Column("tags", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(NAME), nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(NAME), nullable=False),
    Column("version", Integer, nullable=False),
    Column("flavor", String(32), nullable=False),
    Column("run_id", String(ID), nullable=True),
    Column("manifest", String(DIGEST), nullable=False, info={"digest": True}),
    Column("signature", Text, nullable=True),
    Column("requirements", Text, nullable=False),
    Column("onnx_status", String(16), nullable=False),  # attached | rejected | unavailable
    Column("onnx_max_diff", Float, nullable=True),
    Column("onnx_reason", Text, nullable=True),
    Column("stage", String(16), nullable=False),
    Column("description", Text, nullable=True),
    Column("tags", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(NAME), nullable=False),
    UniqueConstraint("name", "version"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", String(NAME), primary_key=True),
    Column("alias", String(NAME), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("updated_by", String(NAME), nullable=False),
)

promotion_requests = Table(
    "promotion_requests",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(NAME), nullable=False),
    Column("version", Integer, nullable=False),
    Column("target_kind", String(8), nullable=False),  # stage | alias
    Column("target", String(NAME), nullable=False),
    Column("reason", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending | approved | rejected | cancelled
    Column("requested_by", String(NAME), nullable=False),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("decided_by", String(NAME), nullable=True),
    Column("decided_at", UtcDateTime(), nullable=True),
    Column("comment", Text, nullable=True),
    Index(None, "name", "status"),
)


# Pipelines (migration 0005) -------------------------------------------------------------

pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("pipeline", String(NAME), nullable=False),
    Column("target", String(1024), nullable=False),  # "path/file.py:func" or "module:func"
    Column("status", String(16), nullable=False),
    Column("params", Text, nullable=False),  # JSON object
    Column("executor", String(32), nullable=False),
    Column("created_by", String(NAME), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("ended_at", UtcDateTime(), nullable=True),
    Column("heartbeat_at", UtcDateTime(), nullable=True),
    Column("cancel_requested", Boolean, nullable=False),
    Column("error", Text, nullable=True),
    Column("resumed_from", String(ID), nullable=True),
    Column("schedule", String(NAME), nullable=True),
    Column("result_digest", String(DIGEST), nullable=True, info={"digest": True}),
    Index(None, "pipeline", "created_at"),
    Index(None, "status"),
)

task_runs = Table(
    "task_runs",
    metadata,
    Column("pipeline_run_id", String(ID), primary_key=True),
    Column("key", String(255), primary_key=True),  # unique in its run, e.g. "train-2"
    Column("task", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("upstream", Text, nullable=False),  # JSON list of task keys
    Column("cache_key", String(64), nullable=True),
    Column("result_digest", String(DIGEST), nullable=True, info={"digest": True}),
    Column("log_digest", String(DIGEST), nullable=True, info={"digest": True}),
    Column("pid", Integer, nullable=True),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("ended_at", UtcDateTime(), nullable=True),
    Column("heartbeat_at", UtcDateTime(), nullable=True),
    Column("error", Text, nullable=True),
    Index(None, "cache_key"),
)

schedules = Table(
    "schedules",
    metadata,
    Column("name", String(NAME), primary_key=True),
    Column("pipeline", String(NAME), nullable=False),
    Column("target", String(1024), nullable=False),
    Column("cron", String(128), nullable=True),
    Column("interval_seconds", Float, nullable=True),
    Column("params", Text, nullable=False),  # JSON object
    Column("missed", String(16), nullable=False),  # skip | catchup
    Column("enabled", Boolean, nullable=False),
    Column("next_run_at", UtcDateTime(), nullable=False),
    Column("last_run_at", UtcDateTime(), nullable=True),
    Column("last_run_id", String(ID), nullable=True),
    Column("lease_owner", String(255), nullable=True),
    Column("lease_until", UtcDateTime(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(NAME), nullable=False),
)

# Serving (migration 0006) ---------------------------------------------------------------

deployments = Table(
    "deployments",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(NAME), nullable=False),
    Column("version", Integer, nullable=False),
    Column("alias", String(NAME), nullable=True),
    Column("url", String(1024), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("runtime", String(16), nullable=False),  # onnx | native
    Column("status", String(16), nullable=False),  # running | stopped
    Column("started_at", UtcDateTime(), nullable=False),
    Column("stopped_at", UtcDateTime(), nullable=True),
    Column("heartbeat_at", UtcDateTime(), nullable=True),
    Column("started_by", String(NAME), nullable=False),
    Index(None, "name", "started_at"),
)

prediction_batches = Table(
    "prediction_batches",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("deployment_id", String(ID), nullable=False),
    Column("name", String(NAME), nullable=False),
    Column("digest", String(DIGEST), nullable=False, info={"digest": True}),  # Parquet
    Column("rows", Integer, nullable=False),
    Column("first_at", UtcDateTime(), nullable=False),
    Column("last_at", UtcDateTime(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Index(None, "name", "last_at"),
    Index(None, "deployment_id"),
)

prediction_feedback = Table(
    "prediction_feedback",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("name", String(NAME), nullable=False),
    Column("deployment_id", String(ID), nullable=True),
    Column("label", Text, nullable=False),  # JSON value
    Column("received_at", UtcDateTime(), nullable=False),
    Index(None, "name", "received_at"),
)


# Monitoring (migration 0007) ------------------------------------------------------------

monitor_runs = Table(
    "monitor_runs",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(NAME), nullable=False),  # the registered model
    Column("version", Integer, nullable=True),
    Column("deployment_id", String(ID), nullable=True),
    Column("reference", String(255), nullable=False),  # dataset version, e.g. "wine@2"
    Column("current", String(255), nullable=False),  # "predictions" or a dataset version
    Column("window_start", UtcDateTime(), nullable=True),
    Column("window_end", UtcDateTime(), nullable=True),
    Column("rows", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # ok | alert | no_data | failed
    Column("metrics", Text, nullable=False),  # JSON object of flat numbers
    Column("alerts", Text, nullable=False),  # JSON list of fired rules
    Column("report_digest", String(DIGEST), nullable=True, info={"digest": True}),
    Column("html_digest", String(DIGEST), nullable=True, info={"digest": True}),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(NAME), nullable=False),
    Column("error", Text, nullable=True),  # why a failed run failed (migration 0010)
    # JSON list of the rules the run could not evaluate, with why (migration 0011)
    Column("skipped_rules", Text, nullable=True),
    Index(None, "name", "created_at"),
)

# Server (migration 0008) ----------------------------------------------------------------

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("user", String(NAME), nullable=False),
    Column("name", String(NAME), nullable=False),  # what the token is for
    Column("secret_hash", String(64), nullable=False, unique=True),  # SHA-256 hex
    Column("prefix", String(16), nullable=False),  # shown in listings, never the secret
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(NAME), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=True),
    Column("revoked_at", UtcDateTime(), nullable=True),
    Column("last_used_at", UtcDateTime(), nullable=True),
    Index(None, "user"),
)


# Request counts of deployments (migration 0010) -----------------------------------------

deployment_counts = Table(
    "deployment_counts",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("deployment_id", String(ID), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    # cumulative since the serving process started: /predict answers, 4xx and 5xx among them
    Column("requests", BigInteger, nullable=False),
    Column("client_errors", BigInteger, nullable=False),
    Column("server_errors", BigInteger, nullable=False),
    Index(None, "deployment_id", "at"),
)


def digest_columns() -> list[Column[str]]:
    """Every column, in every table, that holds a blob digest."""
    return [
        column
        for table in metadata.sorted_tables
        for column in table.columns
        if column.info.get("digest")
    ]

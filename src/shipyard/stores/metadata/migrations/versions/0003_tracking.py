"""Tracking: experiments, runs, params, tags, metrics (latest values and packed chunks), artifacts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.String(32)
_NAME = sa.String(128)
_KEY = sa.String(255)
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", _NAME, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("created_by", _NAME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_experiments"),
        sa.UniqueConstraint("name", name="uq_experiments_name"),
    )
    op.create_table(
        "runs",
        sa.Column("id", _ID, nullable=False),
        sa.Column("experiment_id", _ID, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("parent_id", _ID, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("user", _NAME, nullable=False),
        sa.Column("start_time", _TIME, nullable=False),
        sa.Column("end_time", _TIME, nullable=True),
        sa.Column("heartbeat_at", _TIME, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("environment", sa.Text, nullable=True),
        sa.Column("resources", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index("ix_runs_experiment_id_start_time", "runs", ["experiment_id", "start_time"])
    op.create_index("ix_runs_parent_id", "runs", ["parent_id"])
    op.create_table(
        "run_params",
        sa.Column("run_id", _ID, nullable=False),
        sa.Column("key", _KEY, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "key", name="pk_run_params"),
    )
    op.create_index("ix_run_params_key_value", "run_params", ["key", "value"])
    op.create_table(
        "run_tags",
        sa.Column("run_id", _ID, nullable=False),
        sa.Column("key", _KEY, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "key", name="pk_run_tags"),
    )
    op.create_table(
        "metric_latest",
        sa.Column("run_id", _ID, nullable=False),
        sa.Column("key", _KEY, nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("is_nan", sa.Boolean, nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.Float, nullable=False),
        sa.Column("min_value", sa.Float, nullable=True),
        sa.Column("max_value", sa.Float, nullable=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "key", name="pk_metric_latest"),
    )
    op.create_index("ix_metric_latest_key_value", "metric_latest", ["key", "value"])
    op.create_table(
        "metric_chunks",
        sa.Column("run_id", _ID, nullable=False),
        sa.Column("key", _KEY, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "key", "seq", name="pk_metric_chunks"),
    )
    op.create_table(
        "run_artifacts",
        sa.Column("run_id", _ID, nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("digest", sa.String(71), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "path", name="pk_run_artifacts"),
    )


def downgrade() -> None:
    for table in (
        "run_artifacts",
        "metric_chunks",
        "metric_latest",
        "run_tags",
        "run_params",
        "runs",
        "experiments",
    ):
        op.drop_table(table)

"""Pipelines: pipeline runs, task runs and schedules.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ID = sa.String(32)
_NAME = sa.String(128)
_DIGEST = sa.String(71)
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "pipeline_runs",
        sa.Column("id", _ID, nullable=False),
        sa.Column("pipeline", _NAME, nullable=False),
        sa.Column("target", sa.String(1024), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("executor", sa.String(32), nullable=False),
        sa.Column("created_by", _NAME, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("started_at", _TIME, nullable=True),
        sa.Column("ended_at", _TIME, nullable=True),
        sa.Column("heartbeat_at", _TIME, nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("resumed_from", _ID, nullable=True),
        sa.Column("schedule", _NAME, nullable=True),
        sa.Column("result_digest", _DIGEST, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_pipeline_runs"),
    )
    op.create_index(
        "ix_pipeline_runs_pipeline_created_at", "pipeline_runs", ["pipeline", "created_at"]
    )
    op.create_index("ix_pipeline_runs_status", "pipeline_runs", ["status"])
    op.create_table(
        "task_runs",
        sa.Column("pipeline_run_id", _ID, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("task", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("upstream", sa.Text, nullable=False),
        sa.Column("cache_key", sa.String(64), nullable=True),
        sa.Column("result_digest", _DIGEST, nullable=True),
        sa.Column("log_digest", _DIGEST, nullable=True),
        sa.Column("pid", sa.Integer, nullable=True),
        sa.Column("started_at", _TIME, nullable=True),
        sa.Column("ended_at", _TIME, nullable=True),
        sa.Column("heartbeat_at", _TIME, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("pipeline_run_id", "key", name="pk_task_runs"),
    )
    op.create_index("ix_task_runs_cache_key", "task_runs", ["cache_key"])
    op.create_table(
        "schedules",
        sa.Column("name", _NAME, nullable=False),
        sa.Column("pipeline", _NAME, nullable=False),
        sa.Column("target", sa.String(1024), nullable=False),
        sa.Column("cron", sa.String(128), nullable=True),
        sa.Column("interval_seconds", sa.Float, nullable=True),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("missed", sa.String(16), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("next_run_at", _TIME, nullable=False),
        sa.Column("last_run_at", _TIME, nullable=True),
        sa.Column("last_run_id", _ID, nullable=True),
        sa.Column("lease_owner", sa.String(255), nullable=True),
        sa.Column("lease_until", _TIME, nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("created_by", _NAME, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_schedules"),
    )


def downgrade() -> None:
    for table in ("schedules", "task_runs", "pipeline_runs"):
        op.drop_table(table)

"""Monitoring: monitor runs.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.String(32)
_NAME = sa.String(128)
_DIGEST = sa.String(71)
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "monitor_runs",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", _NAME, nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("deployment_id", _ID, nullable=True),
        sa.Column("reference", sa.String(255), nullable=False),
        sa.Column("current", sa.String(255), nullable=False),
        sa.Column("window_start", _TIME, nullable=True),
        sa.Column("window_end", _TIME, nullable=True),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("alerts", sa.Text, nullable=False),
        sa.Column("report_digest", _DIGEST, nullable=True),
        sa.Column("html_digest", _DIGEST, nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("created_by", _NAME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_runs"),
    )
    op.create_index("ix_monitor_runs_name_created_at", "monitor_runs", ["name", "created_at"])


def downgrade() -> None:
    op.drop_table("monitor_runs")

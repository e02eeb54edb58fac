"""Serving: deployments, prediction-log batches and feedback labels.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.String(32)
_NAME = sa.String(128)
_DIGEST = sa.String(71)
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", _NAME, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("alias", _NAME, nullable=True),
        sa.Column("url", sa.String(1024), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("runtime", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", _TIME, nullable=False),
        sa.Column("stopped_at", _TIME, nullable=True),
        sa.Column("heartbeat_at", _TIME, nullable=True),
        sa.Column("started_by", _NAME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deployments"),
    )
    op.create_index("ix_deployments_name_started_at", "deployments", ["name", "started_at"])
    op.create_table(
        "prediction_batches",
        sa.Column("id", _ID, nullable=False),
        sa.Column("deployment_id", _ID, nullable=False),
        sa.Column("name", _NAME, nullable=False),
        sa.Column("digest", _DIGEST, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("first_at", _TIME, nullable=False),
        sa.Column("last_at", _TIME, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_prediction_batches"),
    )
    op.create_index("ix_prediction_batches_name_last_at", "prediction_batches", ["name", "last_at"])
    op.create_index("ix_prediction_batches_deployment_id", "prediction_batches", ["deployment_id"])
    op.create_table(
        "prediction_feedback",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("name", _NAME, nullable=False),
        sa.Column("deployment_id", _ID, nullable=True),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("received_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_prediction_feedback"),
    )
    op.create_index(
        "ix_prediction_feedback_name_received_at",
        "prediction_feedback",
        ["name", "received_at"],
    )


def downgrade() -> None:
    for table in ("prediction_feedback", "prediction_batches", "deployments"):
        op.drop_table(table)

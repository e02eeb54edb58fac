"""Serving: request and error counts of deployments; the error of a failed monitor run.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_ID = sa.String(32)
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "deployment_counts",
        sa.Column("id", _ID, nullable=False),
        sa.Column("deployment_id", _ID, nullable=False),
        sa.Column("at", _TIME, nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("client_errors", sa.BigInteger, nullable=False),
        sa.Column("server_errors", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deployment_counts"),
    )
    op.create_index(
        "ix_deployment_counts_deployment_id_at", "deployment_counts", ["deployment_id", "at"]
    )
    op.add_column("monitor_runs", sa.Column("error", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("monitor_runs") as batch:  # SQLite rebuilds the table
        batch.drop_column("error")
    op.drop_table("deployment_counts")

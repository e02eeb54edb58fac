"""Monitoring: the alert rules a monitor run could not evaluate, with why.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("monitor_runs", sa.Column("skipped_rules", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("monitor_runs") as batch:  # SQLite rebuilds the table
        batch.drop_column("skipped_rules")

"""Foundation: schema history, lineage edges and the audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.String(32)
_NAME = sa.String(128)
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "schema_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("revision", sa.String(64), nullable=False),
        sa.Column("applied_at", _TIME, nullable=False),
        sa.Column("applied_by", _NAME, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_schema_history"),
    )
    op.create_table(
        "lineage_edges",
        sa.Column("id", _ID, nullable=False),
        sa.Column("from_kind", sa.String(32), nullable=False),
        sa.Column("from_id", sa.String(255), nullable=False),
        sa.Column("to_kind", sa.String(32), nullable=False),
        sa.Column("to_id", sa.String(255), nullable=False),
        sa.Column("relation", sa.String(32), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("created_by", _NAME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lineage_edges"),
        sa.UniqueConstraint(
            "from_kind",
            "from_id",
            "to_kind",
            "to_id",
            "relation",
            name="uq_lineage_edges_from_kind_from_id_to_kind_to_id_relation",
        ),
    )
    op.create_index("ix_lineage_edges_to_kind_to_id", "lineage_edges", ["to_kind", "to_id"])
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
        sa.Column("at", _TIME, nullable=False),
        sa.Column("actor", _NAME, nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("entity_kind", sa.String(32), nullable=False),
        sa.Column("entity_id", sa.String(255), nullable=False),
        sa.Column("before", sa.Text, nullable=True),
        sa.Column("after", sa.Text, nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
        sa.UniqueConstraint("hash", name="uq_audit_log_hash"),
    )
    op.create_index("ix_audit_log_entity_kind_entity_id", "audit_log", ["entity_kind", "entity_id"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("lineage_edges")
    op.drop_table("schema_history")

"""Registry: users and roles, registered models, versions, aliases, promotion requests.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.String(32)
_NAME = sa.String(128)
_DIGEST = sa.String(71)
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("name", _NAME, nullable=False),
        sa.Column("roles", sa.Text, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("created_by", _NAME, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_users"),
    )
    op.create_table(
        "registered_models",
        sa.Column("name", _NAME, nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("created_by", _NAME, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_registered_models"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", _NAME, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("flavor", sa.String(32), nullable=False),
        sa.Column("run_id", _ID, nullable=True),
        sa.Column("manifest", _DIGEST, nullable=False),
        sa.Column("signature", sa.Text, nullable=True),
        sa.Column("requirements", sa.Text, nullable=False),
        sa.Column("onnx_status", sa.String(16), nullable=False),
        sa.Column("onnx_max_diff", sa.Float, nullable=True),
        sa.Column("onnx_reason", sa.Text, nullable=True),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("created_by", _NAME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
    )
    op.create_table(
        "model_aliases",
        sa.Column("name", _NAME, nullable=False),
        sa.Column("alias", _NAME, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("updated_by", _NAME, nullable=False),
        sa.PrimaryKeyConstraint("name", "alias", name="pk_model_aliases"),
    )
    op.create_table(
        "promotion_requests",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", _NAME, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("target_kind", sa.String(8), nullable=False),
        sa.Column("target", _NAME, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", _NAME, nullable=False),
        sa.Column("requested_at", _TIME, nullable=False),
        sa.Column("decided_by", _NAME, nullable=True),
        sa.Column("decided_at", _TIME, nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_promotion_requests"),
    )
    op.create_index("ix_promotion_requests_name_status", "promotion_requests", ["name", "status"])


def downgrade() -> None:
    for table in (
        "promotion_requests",
        "model_aliases",
        "model_versions",
        "registered_models",
        "users",
    ):
        op.drop_table(table)

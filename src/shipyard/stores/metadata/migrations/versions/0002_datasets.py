"""Datasets: content objects (blobs, packs, chunks), datasets, versions and labels.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.String(32)
_NAME = sa.String(128)
_DIGEST = sa.String(71)
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "objects",
        sa.Column("digest", _DIGEST, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("storage", sa.String(8), nullable=False),
        sa.Column("blob", _DIGEST, nullable=True),
        sa.Column("offset", sa.BigInteger, nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_objects"),
    )
    op.create_table(
        "object_chunks",
        sa.Column("object", _DIGEST, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("chunk", _DIGEST, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("object", "seq", name="pk_object_chunks"),
    )
    op.create_table(
        "datasets",
        sa.Column("name", _NAME, nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("created_by", _NAME, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_datasets"),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", _NAME, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("content_digest", _DIGEST, nullable=False),
        sa.Column("manifest", _DIGEST, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("format", sa.String(16), nullable=True),
        sa.Column("file_count", sa.Integer, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=True),
        sa.Column("schema", sa.Text, nullable=True),
        sa.Column("profile", _DIGEST, nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("owner", _NAME, nullable=True),
        sa.Column("license", _NAME, nullable=True),
        sa.Column("source_uri", sa.Text, nullable=True),
        sa.Column("fetched_at", _TIME, nullable=True),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("key_columns", sa.Text, nullable=True),
        sa.Column("parent", sa.Integer, nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("created_by", _NAME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dataset_versions"),
        sa.UniqueConstraint("name", "version", name="uq_dataset_versions_name_version"),
    )
    op.create_index(
        "ix_dataset_versions_name_content_digest",
        "dataset_versions",
        ["name", "content_digest"],
    )
    op.create_table(
        "dataset_labels",
        sa.Column("name", _NAME, nullable=False),
        sa.Column("label", _NAME, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("updated_by", _NAME, nullable=False),
        sa.PrimaryKeyConstraint("name", "label", name="pk_dataset_labels"),
    )


def downgrade() -> None:
    for table in ("dataset_labels", "dataset_versions", "datasets", "object_chunks", "objects"):
        op.drop_table(table)

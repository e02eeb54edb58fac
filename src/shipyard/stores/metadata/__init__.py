"""The metadata store: one SQLAlchemy store for SQLite and PostgreSQL."""

from shipyard.stores.metadata.sql import MigrationStatus, SqlMetadataStore, redact_url

__all__ = ["MigrationStatus", "SqlMetadataStore", "redact_url"]

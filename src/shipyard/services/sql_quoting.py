"""Names and string literals quoted for the DuckDB SQL that services build (no imports)."""

from __future__ import annotations

__all__ = ["sql_name", "sql_text"]


def sql_name(name: str) -> str:
    """A column or table name quoted for DuckDB SQL (any characters, quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def sql_text(text: str) -> str:
    """A string literal for DuckDB SQL (a path, a timestamp), quotes doubled."""
    return "'" + text.replace("'", "''") + "'"

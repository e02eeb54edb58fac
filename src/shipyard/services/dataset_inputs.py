"""What a dataset add is given, checked before anything is read: name, format, tags, keys."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from shipyard.domain.datasets import format_of
from shipyard.domain.references import validate_name
from shipyard.errors import InvalidArgumentError
from shipyard.services.hashing import LocalFile, names_of

__all__ = ["TABLE_FORMATS", "check_add", "check_tags", "table_format_of"]

TABLE_FORMATS = ("csv", "parquet", "jsonl", "arrow")


def check_add(
    name: str,
    tags: Mapping[str, str] | None,
    key: Sequence[str] | str | None,
    format: str | None,
) -> tuple[dict[str, str], tuple[str, ...]]:
    """The card tags and key columns of an add, checked; refuses a bad name or format."""
    validate_name(name, what="dataset name")
    if format is not None and format not in TABLE_FORMATS:
        raise InvalidArgumentError(
            f"unknown table format {format!r}; use csv, parquet, jsonl or arrow"
        )
    return check_tags(tags), (key,) if isinstance(key, str) else tuple(key or ())


def check_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    """Card tags as a plain dict; refuses anything but text names and values."""
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise InvalidArgumentError("tags must be a mapping of names to strings")
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str) or not key:
            raise InvalidArgumentError(f"tag {key!r}={value!r}: names and values are strings")
    return dict(tags)


def table_format_of(files: Sequence[LocalFile]) -> str | None:
    """The table format the files share by suffix, or None (opaque files, or mixed).

    Stops at the first file that is opaque or of another format: a folder of 100,000 opaque
    files is told by its first.
    """
    shared = None
    for name in names_of(files):
        kind = format_of(name)
        if kind is None or kind != (shared or kind):
            return None
        shared = kind
    return shared

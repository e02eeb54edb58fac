"""Names and references: the one place where ``name@7`` and friends are parsed.

A name is letters, digits, ``-``, ``_`` and ``.``; it never holds ``/`` or ``..`` and never
starts with ``.`` or ``-``. A reference is ``NAME`` (meaning ``NAME@latest``), ``NAME@N`` (a
version number), ``NAME@latest`` or ``NAME@ALIAS`` (an alias or tag, itself a name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shipyard.errors import InvalidNameError, InvalidReferenceError

__all__ = ["LATEST", "MAX_VERSION", "Reference", "validate_name"]

LATEST = "latest"
MAX_NAME_LENGTH = 128
# Versions are stored in INTEGER columns: PostgreSQL's int4 holds no more (SQLite would).
MAX_VERSION = 2**31 - 1
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def validate_name(name: object, *, what: str = "name") -> str:
    """Check a name against the naming rule and return it.

    Args:
        name: the candidate name.
        what: what the name names, used in the error message.

    Returns:
        The name, unchanged.

    Raises:
        InvalidNameError: if the name breaks the rule.
    """
    if not isinstance(name, str):
        raise InvalidNameError(repr(name), f"a {what} must be a string")
    if not name:
        raise InvalidNameError(name, f"a {what} cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(name, f"a {what} has at most {MAX_NAME_LENGTH} characters")
    if ".." in name:
        raise InvalidNameError(name, f"a {what} cannot contain '..'")
    if not _NAME.fullmatch(name):
        raise InvalidNameError(
            name,
            f"a {what} is letters, digits, '-', '_' and '.', "
            "and starts with a letter, digit or '_'",
        )
    return name


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed reference: a name and either a version number or a label.

    Examples:
        >>> Reference.parse("churn@7")
        Reference(name='churn', version=7, label=None)
        >>> Reference.parse("churn@champion").label
        'champion'
    """

    name: str
    version: int | None = None
    label: str | None = None

    @classmethod
    def parse(cls, text: object) -> Reference:
        """Parse ``NAME``, ``NAME@N``, ``NAME@latest`` or ``NAME@ALIAS``.

        Raises:
            InvalidReferenceError: if the text is not a well-formed reference.
        """
        if not isinstance(text, str):
            raise InvalidReferenceError(repr(text), "a reference must be a string")
        name, sep, selector = text.partition("@")
        if sep and not selector:
            raise InvalidReferenceError(text, "nothing follows '@'")
        if "@" in selector:
            raise InvalidReferenceError(text, "more than one '@'")
        try:
            validate_name(name)
        except InvalidNameError as exc:
            raise InvalidReferenceError(text, exc.reason) from None
        if not sep or selector == LATEST:
            return cls(name, label=LATEST)
        if selector.isascii() and selector.isdigit():
            version = int(selector)
            if version < 1:
                raise InvalidReferenceError(text, "versions start at 1")
            if version > MAX_VERSION:
                raise InvalidReferenceError(text, f"versions go up to {MAX_VERSION}")
            return cls(name, version=version)
        try:
            validate_name(selector, what="alias")
        except InvalidNameError as exc:
            raise InvalidReferenceError(text, exc.reason) from None
        return cls(name, label=selector)

    @property
    def is_latest(self) -> bool:
        """Whether this reference means the newest version."""
        return self.label == LATEST

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        return f"{self.name}@{self.label}"

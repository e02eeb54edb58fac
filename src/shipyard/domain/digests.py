"""Content digests: ``blake3:<64 hex digits>``, the name of every blob."""

from __future__ import annotations

import re

from shipyard.errors import InvalidDigestError

__all__ = ["ALGORITHM", "format_digest", "parse_digest"]

ALGORITHM = "blake3"
_DIGEST = re.compile(r"blake3:([0-9a-f]{64})")


def parse_digest(digest: object) -> str:
    """Return the hex part of a well-formed digest.

    Raises:
        InvalidDigestError: if the digest is not ``blake3:`` and 64 lowercase hex digits.
    """
    if not isinstance(digest, str):
        raise InvalidDigestError(repr(digest))
    match = _DIGEST.fullmatch(digest)
    if match is None:
        raise InvalidDigestError(digest)
    return match.group(1)


def format_digest(hexdigest: str) -> str:
    """Write a hex BLAKE3 digest in the ``blake3:<hex>`` form."""
    return f"{ALGORITHM}:{hexdigest}"

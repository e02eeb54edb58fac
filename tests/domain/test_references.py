from __future__ import annotations

import pytest

from shipyard.domain.digests import parse_digest
from shipyard.domain.ids import new_id
from shipyard.domain.references import Reference, validate_name
from shipyard.errors import InvalidDigestError, InvalidNameError, InvalidReferenceError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("churn", Reference("churn", label="latest")),
        ("churn@latest", Reference("churn", label="latest")),
        ("churn@7", Reference("churn", version=7)),
        ("churn@champion", Reference("churn", label="champion")),
        ("my-data_v2.1@12", Reference("my-data_v2.1", version=12)),
    ],
)
def test_references_parse(text: str, expected: Reference) -> None:
    assert Reference.parse(text) == expected
    assert Reference.parse(str(expected)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "@3",
        "churn@",
        "churn@0",
        "churn@-1",
        "churn@2147483648",  # above PostgreSQL's INTEGER: once a raw DataError on resolve
        "churn@1@2",
        "a/b@1",
        "../etc@1",
        "..",
        ".hidden",
        "-flag",
        "churn@..",
        "churn@a/b",
        "na me",
        "churn@٣",
        "x" * 129,
        "nul\x00@1",
    ],
)
def test_malformed_references_get_one_clear_error(text: str) -> None:
    with pytest.raises(InvalidReferenceError, match="invalid reference"):
        Reference.parse(text)


@pytest.mark.parametrize("name", ["a/b", "a\\b", "..", "a..b", "", "é", 7, None])
def test_bad_names_are_refused(name: object) -> None:
    with pytest.raises(InvalidNameError):
        validate_name(name)


@pytest.mark.parametrize(
    "digest", ["", "blake3:", "sha256:" + "0" * 64, "blake3:" + "G" * 64, "blake3:" + "A" * 64]
)
def test_malformed_digests_are_refused(digest: str) -> None:
    with pytest.raises(InvalidDigestError):
        parse_digest(digest)


def test_ids_sort_in_creation_order_and_are_unique() -> None:
    ids = [new_id() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5000
    assert all(len(i) == 32 and i[12] == "7" for i in ids)

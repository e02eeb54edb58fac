"""API tokens: the secret shown once and stored hashed, expiry, revocation, audit."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from shipyard.app import Shipyard, build
from shipyard.errors import (
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from shipyard.services.tokens import TokenService, parse_duration
from shipyard.stores.metadata.schema import api_tokens


@pytest.fixture
def admin(project: Shipyard) -> Shipyard:
    """The project with alice (its user) as the first admin and bob as a viewer."""
    project.users.create("alice", ["admin"])
    project.users.create("bob", ["viewer"])
    return project


def test_the_secret_is_returned_once_and_stored_only_as_its_sha256(admin: Shipyard) -> None:
    token, secret = admin.tokens.create("bob", "laptop", expires_in=timedelta(days=30))
    assert secret.startswith("sy_") and len(secret) == 46
    with admin.metadata.read() as conn:
        row = conn.execute(select(api_tokens).where(api_tokens.c.id == token.id)).one()
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(tuple(row))
    assert secret[3:] not in str(tuple(row))
    listed = admin.tokens.list()
    assert [t.id for t in listed] == [token.id]
    assert secret not in str(listed[0].to_dict())
    assert listed[0].prefix == secret[:10]


def test_a_valid_token_proves_its_user_and_current_roles(admin: Shipyard) -> None:
    _, secret = admin.tokens.create("bob")
    identity = admin.tokens.verify(secret)
    assert (identity.user, identity.roles) == ("bob", frozenset({"viewer"}))
    admin.users.grant("bob", ["editor"])
    assert admin.tokens.verify(secret).roles == frozenset({"viewer", "editor"})
    assert admin.tokens.list("bob")[0].last_used_at is not None


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("", "malformed"),
        ("sy_short", "malformed"),
        ("x" * 46, "malformed"),
        ("sy_" + "A" * 43, "unknown"),
    ],
)
def test_bad_secrets_are_refused(admin: Shipyard, secret: str, reason: str) -> None:
    with pytest.raises(UnauthenticatedError, match=reason):
        admin.tokens.verify(secret)


def test_an_expired_token_is_refused(admin: Shipyard) -> None:
    _, secret = admin.tokens.create("bob", expires_in=timedelta(milliseconds=1))
    time.sleep(0.01)
    with pytest.raises(UnauthenticatedError, match="expired"):
        admin.tokens.verify(secret)
    assert not admin.tokens.list()[0].active


def test_a_revoked_token_is_refused_and_both_events_are_audited(admin: Shipyard) -> None:
    token, secret = admin.tokens.create("bob")
    revoked = admin.tokens.revoke(token.id)
    again = admin.tokens.revoke(token.id)
    assert revoked.revoked_at is not None and again.revoked_at == revoked.revoked_at
    with pytest.raises(UnauthenticatedError, match="revoked"):
        admin.tokens.verify(secret)
    entries = admin.audit.list(entity_kind="api_token")
    assert [(e.action, e.actor) for e in entries] == [
        ("token.create", "alice"),
        ("token.revoke", "alice"),
    ]
    assert secret not in str([e.to_dict() for e in entries])


def test_only_admins_create_and_revoke_tokens(admin: Shipyard) -> None:
    token, _ = admin.tokens.create("bob")
    as_bob = TokenService(admin.metadata, admin.audit, admin.users, actor="bob")
    with pytest.raises(PermissionDeniedError):
        as_bob.create("bob")
    with pytest.raises(PermissionDeniedError):
        as_bob.revoke(token.id)
    assert admin.tokens.list()[0].revoked_at is None


def test_bad_requests_change_nothing(admin: Shipyard) -> None:
    with pytest.raises(NotFoundError, match="nobody"):
        admin.tokens.create("nobody")
    with pytest.raises(InvalidArgumentError):
        admin.tokens.create("../etc/passwd")
    with pytest.raises(InvalidArgumentError):
        admin.tokens.create("bob", "a/b")
    with pytest.raises(InvalidArgumentError):
        admin.tokens.create("bob", expires_in=timedelta(0))
    with pytest.raises(NotFoundError):
        admin.tokens.revoke("0" * 32)
    assert admin.tokens.list() == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", timedelta(minutes=90)),
        ("12h", timedelta(hours=12)),
        ("30d", timedelta(days=30)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "0d", "30", "d", "-1d", "1y", "1.5d"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match="duration"):
        parse_duration(text)


def test_another_process_revoking_or_changing_roles_counts_at_the_next_request(
    admin: Shipyard,
) -> None:
    # Each server worker process opens the store itself: what one changes, every other sees
    # at its next verify (nothing is cached between requests).
    token, secret = admin.tokens.create("bob", expires_in=timedelta(days=1))
    assert admin.tokens.verify(secret).roles == frozenset({"viewer"})
    with build(admin.settings) as other:
        other.users.grant("bob", ["editor"])
        assert admin.tokens.verify(secret).roles == frozenset({"viewer", "editor"})
        other.tokens.revoke(token.id)
    with pytest.raises(UnauthenticatedError, match="revoked"):
        admin.tokens.verify(secret)

"""API tokens: the secrets the server's clients prove who they are with.

A token's secret is shown once, when it is created, and stored only as its SHA-256: a
leaked database does not leak working tokens. Verifying looks the hash up, so no secret is
ever compared character by character. Tokens expire and can be revoked; creating and
revoking them lands in the audit log.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Dialect, select

from shipyard.domain.ids import as_utc, new_id, utcnow
from shipyard.domain.references import validate_name
from shipyard.errors import InvalidArgumentError, NotFoundError, UnauthenticatedError
from shipyard.services.audit import AuditService
from shipyard.services.users import UserService
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import api_tokens, users

__all__ = ["PREFIX", "ApiToken", "Identity", "TokenService", "parse_duration"]

PREFIX = "sy_"  # every secret starts with it, so scanners and people recognise one
_SECRET = re.compile(r"sy_[A-Za-z0-9_\-]{43}")
_DURATION = re.compile(r"(\d{1,6})([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_TOUCH_EVERY = 60.0  # seconds between writes of a token's last_used_at


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A token as listings show it: never the secret, only its first characters."""

    id: str
    user: str
    name: str
    prefix: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def active(self) -> bool:
        """Neither revoked nor expired."""
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > utcnow())

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "id": self.id,
            "user": self.user,
            "name": self.name,
            "prefix": self.prefix,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "expires_at": _iso(self.expires_at),
            "revoked_at": _iso(self.revoked_at),
            "last_used_at": _iso(self.last_used_at),
            "active": self.active,
        }


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified token speaks for, and the roles they hold now."""

    user: str
    roles: frozenset[str]
    token_id: str | None


class TokenService:
    """Creates, lists, verifies and revokes API tokens."""

    def __init__(
        self, metadata: SqlMetadataStore, audit: AuditService, users: UserService, *, actor: str
    ) -> None:
        self._metadata = metadata
        self._audit = audit
        self._users = users
        self._actor = actor
        self._touched: dict[str, float] = {}
        self._touch_lock = threading.Lock()

    def create(
        self, user: str, name: str = "default", *, expires_in: timedelta | None = None
    ) -> tuple[ApiToken, str]:
        """Create a token for ``user`` (admins only); the secret is returned this once.

        Args:
            user: the user the token speaks for; they must exist.
            name: what the token is for ("laptop", "ci").
            expires_in: how long it stays valid; None for no expiry.

        Returns:
            The token's record and its secret.

        Raises:
            NotFoundError: if the user does not exist.
            PermissionDeniedError: if the caller is not an admin.
            InvalidArgumentError: for a bad name or a non-positive lifetime.
        """
        validate_name(user, what="user name")
        validate_name(name, what="token name")
        if expires_in is not None and expires_in <= timedelta(0):
            raise InvalidArgumentError("a token's lifetime must be positive, such as 30d")
        secret = PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        token = ApiToken(
            id=new_id(),
            user=user,
            name=name,
            prefix=secret[:10],
            created_at=now,
            created_by=self._actor,
            expires_at=now + expires_in if expires_in is not None else None,
            revoked_at=None,
            last_used_at=None,
        )
        with self._metadata.write() as conn:
            self._users.require(conn, self._actor, "admin")
            if conn.execute(select(users.c.name).where(users.c.name == user)).first() is None:
                raise NotFoundError(
                    f"user {user!r} does not exist: create it with `shipyard users create {user}`"
                )
            conn.execute(
                api_tokens.insert().values(
                    id=token.id,
                    user=user,
                    name=name,
                    secret_hash=_hash(secret),
                    prefix=token.prefix,
                    created_at=now,
                    created_by=self._actor,
                    expires_at=token.expires_at,
                    revoked_at=None,
                    last_used_at=None,
                )
            )
            self._audit.record(
                conn,
                actor=self._actor,
                action="token.create",
                entity_kind="api_token",
                entity_id=token.id,
                after={"user": user, "name": name, "expires_at": _iso(token.expires_at)},
            )
        return token, secret

    def list(self, user: str | None = None) -> list[ApiToken]:
        """Every token (or ``user``'s), oldest first; secrets are never part of it."""
        query = select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.id)
        if user is not None:
            query = query.where(api_tokens.c.user == user)
        with self._metadata.read() as conn:
            return [_token(r._mapping) for r in conn.execute(query)]

    def revoke(self, token_id: str) -> ApiToken:
        """Revoke a token (admins only); revoking twice keeps the first time.

        Raises:
            NotFoundError: if no token has this id.
            PermissionDeniedError: if the caller is not an admin.
        """
        with self._metadata.write() as conn:
            self._users.require(conn, self._actor, "admin")
            row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
            if row is None:
                raise NotFoundError(
                    f"token {token_id!r} does not exist: `shipyard tokens list` shows them"
                )
            if row.revoked_at is None:
                now = utcnow()
                conn.execute(
                    api_tokens.update().where(api_tokens.c.id == token_id).values(revoked_at=now)
                )
                self._audit.record(
                    conn,
                    actor=self._actor,
                    action="token.revoke",
                    entity_kind="api_token",
                    entity_id=token_id,
                    before={"revoked_at": None},
                    after={"revoked_at": now.isoformat()},
                )
            fresh = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
        assert fresh is not None  # read in the same transaction
        return _token(fresh._mapping)

    def verify(self, secret: str) -> Identity:
        """The identity a secret proves, with the user's current roles.

        Raises:
            UnauthenticatedError: for a malformed, unknown, expired or revoked token.
        """
        if not _SECRET.fullmatch(secret):
            raise UnauthenticatedError("the token is malformed")
        # Every request of the server comes here, so the read is plain SQL on the driver's
        # cursor (constants and one placeholder): a token revoked or a role changed by any
        # process is seen by the next request, at a fraction of an expression's cost.
        dialect = self._metadata.engine.dialect
        with self._metadata.read() as conn:
            cursor = conn.connection.cursor()
            try:
                cursor.execute(_VERIFY[self._metadata.dialect], (_hash(secret),))
                row = cursor.fetchone()
            finally:
                cursor.close()
        if row is None:
            raise UnauthenticatedError("the token is unknown")
        token_id, user, revoked_at, expires_at, roles = row
        if revoked_at is not None:
            raise UnauthenticatedError("the token was revoked")
        if expires_at is not None and _moment(expires_at, dialect) <= utcnow():
            raise UnauthenticatedError("the token has expired")
        self._touch(token_id)
        return Identity(user, _roles(roles), token_id)

    def _touch(self, token_id: str) -> None:
        # last_used_at is a hint for people: written at most once a minute per token, so
        # that verifying stays a read.
        now = time.monotonic()
        with self._touch_lock:
            if now - self._touched.get(token_id, -_TOUCH_EVERY) < _TOUCH_EVERY:
                return
            self._touched[token_id] = now
        with self._metadata.write() as conn:
            conn.execute(
                api_tokens.update().where(api_tokens.c.id == token_id).values(last_used_at=utcnow())
            )


def parse_duration(text: str) -> timedelta:
    """``90m``, ``12h``, ``30d`` or ``2w`` as a timedelta.

    Raises:
        InvalidArgumentError: for anything else.
    """
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or int(match.group(1)) == 0:
        raise InvalidArgumentError(
            f"{text!r} is not a duration: use a positive number with m, h, d or w, such as 30d"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


_VERIFY = {  # by dialect: they differ only in the driver's placeholder
    dialect: 'SELECT t.id, t."user", t.revoked_at, t.expires_at, u.roles FROM api_tokens t'
    f' LEFT JOIN users u ON u.name = t."user" WHERE t.secret_hash = {mark}'
    for dialect, mark in (("sqlite", "?"), ("postgresql", "%s"))
}


def _moment(value: Any, dialect: Dialect) -> datetime:
    """A time as the driver returned it, read as the column's type reads it (aware UTC)."""
    column = api_tokens.c.expires_at.type.dialect_impl(dialect)
    process = column.result_processor(dialect, None)
    moment = process(value) if process is not None else value
    assert isinstance(moment, datetime)  # a non-NULL time column reads as a datetime
    return as_utc(moment)


@functools.lru_cache(maxsize=256)
def _roles(text: str | None) -> frozenset[str]:
    """A user's roles from their stored JSON list (None for a user that no longer exists)."""
    return frozenset(json.loads(text)) if text else frozenset()


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else as_utc(moment).isoformat()


def _token(row: Any) -> ApiToken:
    def moment(value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)

    return ApiToken(
        id=row["id"],
        user=row["user"],
        name=row["name"],
        prefix=row["prefix"],
        created_at=as_utc(row["created_at"]),
        created_by=row["created_by"],
        expires_at=moment(row["expires_at"]),
        revoked_at=moment(row["revoked_at"]),
        last_used_at=moment(row["last_used_at"]),
    )

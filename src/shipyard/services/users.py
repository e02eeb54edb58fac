"""Users and their roles: viewer, editor, approver, admin."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from shipyard.domain.ids import utcnow
from shipyard.domain.models import ROLES
from shipyard.domain.references import validate_name
from shipyard.errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from shipyard.services.audit import AuditService
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import users

__all__ = ["User", "UserService"]


@dataclass(frozen=True, slots=True)
class User:
    """A person (or service account) and the roles they hold."""

    name: str
    roles: tuple[str, ...]
    created_at: datetime
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "name": self.name,
            "roles": list(self.roles),
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


class UserService:
    """Creates users, grants and revokes roles, and checks them."""

    def __init__(self, metadata: SqlMetadataStore, audit: AuditService, *, actor: str) -> None:
        self._metadata = metadata
        self._audit = audit
        self._actor = actor

    def create(self, name: str, roles: Iterable[str] = ("viewer",)) -> User:
        """Create a user with roles.

        The first user must be given ``admin``; after that only an admin creates users.

        Raises:
            AlreadyExistsError: if the user exists.
            PermissionDeniedError: if the caller is not an admin (once one exists).
        """
        validate_name(name, what="user name")
        wanted = _check_roles(roles)
        with self._metadata.write() as conn:
            self._metadata.lock(conn, "users")
            existing = {r.name: r for r in conn.execute(select(users))}
            if name in existing:
                raise AlreadyExistsError(f"user {name!r} exists already")
            admins = [n for n, r in existing.items() if "admin" in json.loads(r.roles)]
            if not admins and "admin" not in wanted:
                raise InvalidArgumentError(
                    "the first user must be an admin: create it with --role admin"
                )
            if admins and self._actor not in admins:
                raise PermissionDeniedError(
                    f"{self._actor} is not an admin: only admins create users"
                )
            now = utcnow()
            conn.execute(
                users.insert().values(
                    name=name,
                    roles=json.dumps(sorted(wanted)),
                    created_at=now,
                    created_by=self._actor,
                )
            )
            self._audit.record(
                conn,
                actor=self._actor,
                action="user.create",
                entity_kind="user",
                entity_id=name,
                after={"roles": sorted(wanted)},
            )
        return User(name, tuple(sorted(wanted)), now, self._actor)

    def grant(self, name: str, roles: Iterable[str]) -> User:
        """Give a user more roles (admins only)."""
        return self._change(name, _check_roles(roles), add=True)

    def revoke(self, name: str, roles: Iterable[str]) -> User:
        """Take roles from a user (admins only)."""
        return self._change(name, _check_roles(roles), add=False)

    def _change(self, name: str, roles: set[str], *, add: bool) -> User:
        with self._metadata.write() as conn:
            self._metadata.lock(conn, "users")
            self._require_role(conn, self._actor, "admin")
            row = conn.execute(select(users).where(users.c.name == name)).first()
            if row is None:
                raise NotFoundError(f"user {name!r} does not exist")
            before = set(json.loads(row.roles))
            after = before | roles if add else before - roles
            conn.execute(
                users.update().where(users.c.name == name).values(roles=json.dumps(sorted(after)))
            )
            self._audit.record(
                conn,
                actor=self._actor,
                action="user.grant" if add else "user.revoke",
                entity_kind="user",
                entity_id=name,
                before={"roles": sorted(before)},
                after={"roles": sorted(after)},
            )
        return User(name, tuple(sorted(after)), row.created_at, row.created_by)

    def list(self) -> list[User]:
        """Every user, by name."""
        with self._metadata.read() as conn:
            rows = conn.execute(select(users).order_by(users.c.name)).all()
        return [User(r.name, tuple(json.loads(r.roles)), r.created_at, r.created_by) for r in rows]

    def roles(self, name: str) -> set[str]:
        """The roles a user holds (empty for an unknown user)."""
        with self._metadata.read() as conn:
            value = conn.execute(select(users.c.roles).where(users.c.name == name)).scalar()
        return set(json.loads(value)) if value else set()

    def _require_role(self, conn: Any, name: str, role: str) -> None:
        value = conn.execute(select(users.c.roles).where(users.c.name == name)).scalar()
        held = set(json.loads(value)) if value else set()
        if role not in held and "admin" not in held:
            raise PermissionDeniedError(
                f"{name} does not hold the {role} role; an admin can grant it with "
                f"`shipyard users grant {name} --role {role}`"
            )

    def require(self, conn: Any, name: str, role: str) -> None:
        """Raise ``PermissionDeniedError`` unless ``name`` holds ``role`` (or admin)."""
        self._require_role(conn, name, role)


def _check_roles(roles: Iterable[str]) -> set[str]:
    wanted = set(roles)
    unknown = wanted - set(ROLES)
    if unknown or not wanted:
        raise InvalidArgumentError(
            f"unknown role(s) {', '.join(sorted(unknown)) or '(none given)'}; "
            f"roles are {', '.join(ROLES)}"
        )
    return wanted

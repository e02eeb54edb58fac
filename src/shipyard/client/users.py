"""Users and tokens over HTTP, for admins: the public methods of the local services."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from datetime import timedelta

from shipyard.client.http import ApiClient
from shipyard.domain.records import from_record
from shipyard.domain.references import validate_name
from shipyard.services.tokens import ApiToken
from shipyard.services.users import User

__all__ = ["RemoteTokenService", "RemoteUserService"]


class RemoteUserService:
    """The user service of a remote project (admins only, as on the server)."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    def create(self, name: str, roles: Iterable[str] = ("viewer",)) -> User:
        """Create a user with roles."""
        validate_name(name, what="user name")
        body = {"name": name, "roles": list(roles)}
        return from_record(User, self._client.call("POST", "/users", body=body))

    def grant(self, name: str, roles: Iterable[str]) -> User:
        """Give a user roles."""
        return self._roles(name, "grant", roles)

    def revoke(self, name: str, roles: Iterable[str]) -> User:
        """Take roles from a user."""
        return self._roles(name, "revoke", roles)

    def list(self) -> builtins.list[User]:
        """Every user and their roles."""
        return [from_record(User, u) for u in self._client.call("GET", "/users")]

    def _roles(self, name: str, verb: str, roles: Iterable[str]) -> User:
        validate_name(name, what="user name")
        body = {"roles": builtins.list(roles)}
        return from_record(User, self._client.call("POST", f"/users/{name}/{verb}", body=body))


class RemoteTokenService:
    """The token service of a remote project (admins only, as on the server)."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    def create(
        self, user: str, name: str = "default", *, expires_in: timedelta | None = None
    ) -> tuple[ApiToken, str]:
        """Create a token for ``user``; the secret is returned this once."""
        body: dict[str, object] = {"user": user, "name": name}
        if expires_in is not None:
            body["expires_in_seconds"] = max(1, int(expires_in.total_seconds()))
        answer = self._client.call("POST", "/tokens", body=body)
        return from_record(ApiToken, answer), str(answer["secret"])

    def list(self, user: str | None = None) -> builtins.list[ApiToken]:
        """Tokens (never their secrets), of one user or of all."""
        params = {"user": user} if user else None
        return [
            from_record(ApiToken, t) for t in self._client.call("GET", "/tokens", params=params)
        ]

    def revoke(self, token_id: str) -> ApiToken:
        """Revoke a token; it stops working at the next request."""
        return from_record(ApiToken, self._client.call("DELETE", f"/tokens/{token_id}"))

"""What every request shares: the project, whether auth is on, services bound to the caller."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from shipyard.app import Shipyard
from shipyard.domain.models import ROLES
from shipyard.services.datasets import DatasetService
from shipyard.services.models import ModelService
from shipyard.services.registry import RegistryService
from shipyard.services.runs import RunService
from shipyard.services.tokens import Identity, TokenService
from shipyard.services.transfers import DEFAULT_UPLOAD_LIMIT, TransferService
from shipyard.services.users import UserService

__all__ = ["ActorServices", "ApiContext", "Caller"]


@dataclass(frozen=True, slots=True)
class ActorServices:
    """The services whose writes record an actor, bound to one user."""

    runs: RunService
    datasets: DatasetService
    models: ModelService
    registry: RegistryService
    users: UserService
    tokens: TokenService


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request, and the services that write as them."""

    identity: Identity
    services: ActorServices


class ApiContext:
    """The project behind the API and the per-user services, built once per user."""

    def __init__(
        self, project: Shipyard, *, auth: bool, upload_limit: int = DEFAULT_UPLOAD_LIMIT
    ) -> None:
        self.project = project
        self.auth = auth
        self.transfers = TransferService(
            project.metadata,
            project.content,
            project.objects,
            scratch=project.settings.state_dir / "tmp" / "uploads",
            limit=upload_limit,
        )
        # Without auth (loopback only) every request acts as the server's own user.
        self.local = Identity(project.user, frozenset(ROLES), None)
        self._bound: dict[str, ActorServices] = {}
        self._lock = threading.Lock()

    def services_for(self, user: str) -> ActorServices:
        """Services that record ``user`` as the actor of every write."""
        with self._lock:
            found = self._bound.get(user)
            if found is None:
                found = self._bound[user] = self._build(user)
            return found

    def _build(self, user: str) -> ActorServices:
        p = self.project
        state = p.settings.state_dir
        users = UserService(p.metadata, p.audit, actor=user)
        registry = RegistryService(
            p.metadata,
            p.audit,
            p.lineage,
            users,
            actor=user,
            require_second_person=p.settings.require_second_person,
            protected_stages=p.settings.protected_stages,
            protected_aliases=p.settings.protected_aliases,
        )
        runs = RunService(
            p.metadata,
            p.objects,
            p.lineage,
            p.models,
            p.datasets,
            user=user,
            scratch=state / "tmp",
        )
        datasets = DatasetService(
            p.metadata,
            p.content,
            p.objects,
            p.audit,
            user=user,
            scratch=state / "tmp",
            cache=state / "cache" / "datasets",
        )
        models = ModelService(
            p.metadata,
            p.content,
            p.objects,
            registry,
            scratch=state / "tmp",
            cache=state / "cache" / "models",
        )
        return ActorServices(
            runs,
            datasets,
            models,
            registry,
            users,
            TokenService(p.metadata, p.audit, users, actor=user),
        )

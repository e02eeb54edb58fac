"""Composition root: ``build(settings)`` wires stores into services. Nothing runs at import."""

from __future__ import annotations

import getpass
import json
import os
from dataclasses import dataclass, field

from shipyard.services.audit import AuditService
from shipyard.services.blobs import BlobService
from shipyard.services.datasets import DatasetService
from shipyard.services.deployments import DeploymentService
from shipyard.services.lineage import LineageService
from shipyard.services.maintenance import MaintenanceService
from shipyard.services.models import ModelService
from shipyard.services.monitoring import MonitoringService
from shipyard.services.objects import ObjectService
from shipyard.services.packaging import PackageService
from shipyard.services.pipelines import PipelineService
from shipyard.services.predictions import PredictionService
from shipyard.services.registry import RegistryService
from shipyard.services.runs import RunService
from shipyard.services.schedules import ScheduleService
from shipyard.services.tokens import TokenService
from shipyard.services.users import UserService
from shipyard.settings import Settings
from shipyard.stores.artifacts import open_blob_store
from shipyard.stores.artifacts.content import ContentStore
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.statcache import StatCache

__all__ = ["Shipyard", "build", "current_user"]


@dataclass
class Shipyard:
    """One project's stores and services, ready to use.

    Get one with ``shipyard.connect()`` (or ``build(settings)``); close it when done.
    """

    settings: Settings
    user: str
    metadata: SqlMetadataStore
    content: ContentStore
    audit: AuditService = field(init=False)
    blobs: BlobService = field(init=False)
    datasets: DatasetService = field(init=False)
    lineage: LineageService = field(init=False)
    maintenance: MaintenanceService = field(init=False)
    objects: ObjectService = field(init=False)
    runs: RunService = field(init=False)
    users: UserService = field(init=False)
    registry: RegistryService = field(init=False)
    models: ModelService = field(init=False)
    pipelines: PipelineService = field(init=False)
    schedules: ScheduleService = field(init=False)
    deployments: DeploymentService = field(init=False)
    predictions: PredictionService = field(init=False)
    packages: PackageService = field(init=False)
    monitoring: MonitoringService = field(init=False)
    tokens: TokenService = field(init=False)
    stat_cache: StatCache = field(init=False)

    def __post_init__(self) -> None:
        state = self.settings.state_dir
        self.stat_cache = StatCache(state / "cache" / "stat.db")
        self.audit = AuditService(self.metadata)
        self.blobs = BlobService(self.content)
        self.lineage = LineageService(self.metadata)
        self.objects = ObjectService(self.metadata, self.content, self.stat_cache)
        self.datasets = DatasetService(
            self.metadata,
            self.content,
            self.objects,
            self.audit,
            user=self.user,
            scratch=state / "tmp",
            cache=state / "cache" / "datasets",
        )
        self.users = UserService(self.metadata, self.audit, actor=self.user)
        self.tokens = TokenService(self.metadata, self.audit, self.users, actor=self.user)
        self.registry = RegistryService(
            self.metadata,
            self.audit,
            self.lineage,
            self.users,
            actor=self.user,
            require_second_person=self.settings.require_second_person,
            protected_stages=self.settings.protected_stages,
            protected_aliases=self.settings.protected_aliases,
        )
        self.deployments = DeploymentService(
            self.metadata, self.audit, self.lineage, self.registry, actor=self.user
        )
        self.predictions = PredictionService(
            self.metadata, self.content, cache=state / "cache" / "predictions"
        )
        self.models = ModelService(
            self.metadata,
            self.content,
            self.objects,
            self.registry,
            scratch=state / "tmp",
            cache=state / "cache" / "models",
        )
        self.packages = PackageService(
            self.registry, self.models, actor=self.user, project_root=self.settings.root
        )
        self.runs = RunService(
            self.metadata,
            self.objects,
            self.lineage,
            self.models,
            self.datasets,
            user=self.user,
            scratch=state / "tmp",
        )
        self.pipelines = PipelineService(
            self.metadata,
            self.content,
            self.settings,
            user=self.user,
            audit=self.audit,
            resolve_dataset=self.datasets.resolve,
        )
        self.schedules = ScheduleService(
            self.metadata,
            self.audit,
            user=self.user,
            pipelines=self.pipelines,
            declared={name: json.loads(table) for name, table in self.settings.schedules},
            root=self.settings.root,
        )
        self.monitoring = MonitoringService(
            self.metadata,
            self.content,
            self.settings,
            self,
            user=self.user,
            cache=state / "cache",
        )
        self.maintenance = MaintenanceService(
            self.metadata,
            self.content,
            project_root=str(self.settings.root),
            executor=self.settings.executor,
            server_uri=self.settings.server_uri,
            user=self.user,
        )

    def close(self) -> None:
        """Release database connections and blob-store clients."""
        self.metadata.close()
        self.content.blobs.close()
        self.stat_cache.close()

    def __enter__(self) -> Shipyard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def current_user(settings: Settings) -> str:
    """Who writes are recorded as in local mode: the configured user, else the OS user."""
    if settings.user:
        return settings.user
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


def build(settings: Settings, *, migrate: bool = True) -> Shipyard:
    """Open the stores named by ``settings`` and wire the services over them.

    Args:
        settings: the project's settings.
        migrate: apply pending metadata migrations on open.
    """
    metadata = SqlMetadataStore(
        settings.metadata_uri, durability=settings.durability, migrate=migrate
    )
    try:
        blobs = open_blob_store(settings.artifact_uri, fsync=settings.durability == "full")
    except BaseException:
        metadata.close()
        raise
    return Shipyard(settings, current_user(settings), metadata, ContentStore(blobs))

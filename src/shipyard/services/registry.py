"""The model registry: names, numbered versions, aliases, stages and approved promotions.

Protected stages and aliases (``registry.protected_stages`` / ``protected_aliases``) change
only through a promotion request that a user with the approver role approves; with
``registry.require_second_person`` the approver must not be the requester. Every change is
written to the audit log in the same transaction.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, func, select

from shipyard.domain.ids import new_id, utcnow
from shipyard.domain.lineage import Node
from shipyard.domain.models import (
    STAGES,
    ModelVersion,
    PromotionRequest,
    RegisteredModel,
    Signature,
)
from shipyard.domain.references import LATEST, Reference, validate_name
from shipyard.errors import (
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from shipyard.services.audit import AuditService
from shipyard.services.lineage import LineageService
from shipyard.services.users import UserService
from shipyard.stores.metadata import SqlMetadataStore
from shipyard.stores.metadata.schema import (
    model_aliases,
    model_versions,
    promotion_requests,
    registered_models,
)

__all__ = ["RegistryService"]

# Built once: registering a version runs these on every call, and building a statement costs
# more than SQLite running it.
# Plain driver SQL: a registration runs it every time (SQLAlchemy's compiled path costs more)
_LAST_VERSION = "SELECT max(version) FROM model_versions WHERE name = ?"


class RegistryService:
    """Registered models, versions, aliases, stages and promotion requests."""

    def __init__(
        self,
        metadata: SqlMetadataStore,
        audit: AuditService,
        lineage: LineageService,
        users: UserService,
        *,
        actor: str,
        require_second_person: bool,
        protected_stages: Sequence[str],
        protected_aliases: Sequence[str],
    ) -> None:
        self._metadata = metadata
        self._audit = audit
        self._lineage = lineage
        self._users = users
        self._actor = actor
        self.require_second_person = require_second_person
        self.protected_stages = frozenset(protected_stages)
        self.protected_aliases = frozenset(protected_aliases)

    # -- versions ---------------------------------------------------------------------------

    def create_version(
        self,
        conn: Connection,
        *,
        name: str,
        flavor: str,
        run_id: str | None,
        manifest: str,
        signature: Signature | None,
        requirements: Sequence[str],
        onnx: Mapping[str, Any],
        description: str | None,
        tags: Mapping[str, str],
    ) -> ModelVersion:
        """Register the next version of ``name`` inside the caller's write transaction.

        Versions are numbered 1, 2, … without gaps, also when many processes register at once.
        """
        validate_name(name, what="model name")
        self._metadata.lock(conn, f"model:{name}")
        now = utcnow()
        self._metadata.insert_ignore(
            conn,
            registered_models,
            [
                {
                    "name": name,
                    "description": None,
                    "tags": "{}",
                    "created_at": now,
                    "created_by": self._actor,
                }
            ],
        )
        last_version = self._metadata.driver_sql(conn, _LAST_VERSION)
        last = conn.exec_driver_sql(last_version, (name,)).scalar()
        row = {
            "id": new_id(),
            "name": name,
            "version": (last or 0) + 1,
            "flavor": flavor,
            "run_id": run_id,
            "manifest": manifest,
            "signature": json.dumps(signature.to_dict()) if signature else None,
            "requirements": json.dumps(list(requirements)),
            "onnx_status": onnx["status"],
            "onnx_max_diff": _finite(onnx.get("max_diff")),
            "onnx_reason": onnx.get("reason"),
            "stage": "none",
            "description": description,
            "tags": json.dumps(dict(tags), sort_keys=True),
            "created_at": now,
            "created_by": self._actor,
        }
        self._metadata.insert_row(conn, model_versions, row)
        version = _version(row, ())
        if run_id is not None:
            self._lineage.link(
                conn,
                Node("run", run_id),
                "produced",
                Node("model_version", version.ref),
                actor=self._actor,
            )
        self._audit.record(
            conn,
            actor=self._actor,
            action="model.register",
            entity_kind="model_version",
            entity_id=version.ref,
            after={"flavor": flavor, "run_id": run_id, "onnx": onnx["status"]},
        )
        return version

    def resolve(self, reference: str) -> ModelVersion:
        """``name@N``, ``name@latest``, ``name@ALIAS`` or ``name@STAGE`` to a version.

        Raises:
            InvalidReferenceError: for a malformed reference.
            NotFoundError: naming what does not exist.
        """
        ref = Reference.parse(reference)
        v = model_versions.c
        with self._metadata.read() as conn:
            number: int | None = ref.version
            if number is None and ref.label == LATEST:
                number = conn.execute(
                    select(func.max(v.version)).where(v.name == ref.name)
                ).scalar()
            elif number is None:
                number = conn.execute(
                    select(model_aliases.c.version).where(
                        model_aliases.c.name == ref.name, model_aliases.c.alias == ref.label
                    )
                ).scalar()
                if number is None and ref.label in STAGES:
                    number = conn.execute(
                        select(func.max(v.version)).where(v.name == ref.name, v.stage == ref.label)
                    ).scalar()
            row = None
            if number is not None:
                row = conn.execute(
                    select(model_versions).where(v.name == ref.name, v.version == number)
                ).first()
            if row is None:
                raise NotFoundError(self._missing(conn, ref))
            aliases = self._aliases(conn, ref.name).get(row.version, ())
        return _version(row._mapping, aliases)

    def _missing(self, conn: Connection, ref: Reference) -> str:
        last = conn.execute(
            select(func.max(model_versions.c.version)).where(model_versions.c.name == ref.name)
        ).scalar()
        if last is None:
            return f"model {ref.name!r} does not exist; `shipyard models list` shows them"
        if ref.version is not None:
            return f"model {ref} does not exist: {ref.name} has versions 1 to {last}"
        known = sorted(self._aliases_by_name(conn, ref.name))
        return f"model {ref} does not exist: {ref.name} has no alias or stage {ref.label!r}" + (
            f" (aliases: {', '.join(known)})" if known else ""
        )

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of a model, oldest first.

        Raises:
            NotFoundError: if the model does not exist.
        """
        query = (
            select(model_versions)
            .where(model_versions.c.name == name)
            .order_by(model_versions.c.version)
        )
        with self._metadata.read() as conn:
            rows = conn.execute(query).all()
            aliases = self._aliases(conn, name)
        if not rows:
            raise NotFoundError(f"model {name!r} does not exist")
        return [_version(r._mapping, aliases.get(r.version, ())) for r in rows]

    def models(self) -> list[RegisteredModel]:
        """Every registered model, by name, with its latest version and aliases."""
        v = model_versions.c
        latest = select(v.name, func.max(v.version).label("latest")).group_by(v.name).subquery()
        query = (
            select(registered_models, latest.c.latest)
            .outerjoin(latest, latest.c.name == registered_models.c.name)
            .order_by(registered_models.c.name)
        )
        with self._metadata.read() as conn:
            rows = conn.execute(query).all()
            aliases = {r.name: self._aliases_by_name(conn, r.name) for r in rows}
        return [
            RegisteredModel(
                r.name,
                r.description,
                json.loads(r.tags),
                r.created_at,
                r.created_by,
                r.latest,
                aliases[r.name],
            )
            for r in rows
        ]

    # -- registered models ------------------------------------------------------------------

    def model(self, name: str) -> RegisteredModel:
        """One registered model with its description, tags, latest version and aliases.

        Raises:
            InvalidNameError: for a name that breaks the naming rule.
            NotFoundError: if the model does not exist.
        """
        validate_name(name, what="model name")
        with self._metadata.read() as conn:
            return self._model(conn, name)

    def update_model(
        self,
        name: str,
        *,
        description: str | None = None,
        tags: Mapping[str, str | None] | None = None,
    ) -> RegisteredModel:
        """Describe a registered model: set its description, add, change or remove tags.

        What is left out stays as it was. ``description=""`` clears the description. Tags
        are merged into the model's tags; a tag given with the value ``None`` or ``""`` is
        removed. A change is audited (``model.update``, before and after); an update that
        changes nothing writes nothing.

        Example:
            >>> sy.registry.update_model("churn", tags={"team": "growth"})  # doctest: +SKIP

        Args:
            name: the registered model.
            description: the new description; ``None`` keeps it, ``""`` clears it.
            tags: tags to set (merged); a value of ``None`` or ``""`` removes that tag.

        Returns:
            The model as it is now.

        Raises:
            InvalidNameError: for a name that breaks the naming rule.
            InvalidArgumentError: for a description or tag that is not text, too long, or
                holds a NUL character.
            NotFoundError: if the model does not exist (log a version first).
        """
        validate_name(name, what="model name")
        if description is not None:
            _check_text(description, "a model description", _MAX_DESCRIPTION)
        changes = _check_tags(tags or {})
        m = registered_models.c
        with self._metadata.write() as conn:
            self._metadata.lock(conn, f"model:{name}")
            current = self._model(conn, name)
            merged = dict(current.tags)
            for key, value in changes.items():
                if value:
                    merged[key] = value
                else:
                    merged.pop(key, None)
            text = current.description if description is None else (description or None)
            before = {"description": current.description, "tags": dict(current.tags)}
            after = {"description": text, "tags": merged}
            if after == before:
                return current
            conn.execute(
                registered_models.update()
                .where(m.name == name)
                .values(description=text, tags=json.dumps(merged, sort_keys=True))
            )
            self._audit.record(
                conn,
                actor=self._actor,
                action="model.update",
                entity_kind="registered_model",
                entity_id=name,
                before=before,
                after=after,
            )
        return RegisteredModel(
            current.name,
            text,
            dict(sorted(merged.items())),
            current.created_at,
            current.created_by,
            current.latest_version,
            current.aliases,
        )

    def _model(self, conn: Connection, name: str) -> RegisteredModel:
        row = conn.execute(
            select(registered_models).where(registered_models.c.name == name)
        ).first()
        if row is None:
            raise NotFoundError(
                f"model {name!r} does not exist; `shipyard models list` shows them "
                "(a model exists once a version of it is logged)"
            )
        latest = conn.execute(
            select(func.max(model_versions.c.version)).where(model_versions.c.name == name)
        ).scalar()
        return RegisteredModel(
            row.name,
            row.description,
            json.loads(row.tags),
            row.created_at,
            row.created_by,
            latest,
            self._aliases_by_name(conn, name),
        )

    def _aliases(self, conn: Connection, name: str) -> dict[int, tuple[str, ...]]:
        by_version: dict[int, list[str]] = {}
        for alias, version in self._aliases_by_name(conn, name).items():
            by_version.setdefault(version, []).append(alias)
        return {k: tuple(sorted(v)) for k, v in by_version.items()}

    def _aliases_by_name(self, conn: Connection, name: str) -> dict[str, int]:
        query = select(model_aliases.c.alias, model_aliases.c.version).where(
            model_aliases.c.name == name
        )
        return {r.alias: r.version for r in conn.execute(query)}

    # -- aliases and stages -----------------------------------------------------------------

    def set_alias(self, reference: str, alias: str) -> ModelVersion:
        """Point ``name@alias`` at a version (an unprotected alias; others need a request).

        Raises:
            PermissionDeniedError: for a protected alias.
        """
        validate_name(alias, what="alias")
        _check_alias(alias)
        version = self.resolve(reference)
        if alias in self.protected_aliases:
            raise _protected("alias", alias, reference)
        with self._metadata.write() as conn:
            self._move_alias(conn, version, alias)
        return self.resolve(version.ref)

    def set_stage(self, reference: str, stage: str) -> ModelVersion:
        """Move a version to an unprotected stage (protected stages need a request).

        Raises:
            InvalidArgumentError: for an unknown stage.
            PermissionDeniedError: for a protected stage.
        """
        _check_stage(stage)
        version = self.resolve(reference)
        if stage in self.protected_stages:
            raise _protected("stage", stage, reference)
        with self._metadata.write() as conn:
            self._move_stage(conn, version, stage)
        return self.resolve(version.ref)

    def _move_alias(self, conn: Connection, version: ModelVersion, alias: str) -> None:
        self._metadata.lock(conn, f"model:{version.name}")
        a = model_aliases.c
        before = conn.execute(
            select(a.version).where(a.name == version.name, a.alias == alias)
        ).scalar()
        values = {"version": version.version, "updated_at": utcnow(), "updated_by": self._actor}
        if before is None:
            conn.execute(model_aliases.insert().values(name=version.name, alias=alias, **values))
        else:
            conn.execute(
                model_aliases.update()
                .where(a.name == version.name, a.alias == alias)
                .values(**values)
            )
        self._audit.record(
            conn,
            actor=self._actor,
            action="model.alias",
            entity_kind="model_alias",
            entity_id=f"{version.name}@{alias}",
            before=None if before is None else {"version": before},
            after={"version": version.version},
        )

    def _move_stage(self, conn: Connection, version: ModelVersion, stage: str) -> None:
        self._metadata.lock(conn, f"model:{version.name}")
        v = model_versions.c
        current = conn.execute(
            select(v.stage).where(v.name == version.name, v.version == version.version)
        ).scalar()
        if stage == "production":  # one production version at a time: the previous retires
            previous = (
                conn.execute(
                    select(v.version).where(
                        v.name == version.name,
                        v.stage == "production",
                        v.version != version.version,
                    )
                )
                .scalars()
                .all()
            )
            for number in previous:
                conn.execute(
                    model_versions.update()
                    .where(v.name == version.name, v.version == number)
                    .values(stage="archived")
                )
                self._audit.record(
                    conn,
                    actor=self._actor,
                    action="model.stage",
                    entity_kind="model_version",
                    entity_id=f"{version.name}@{number}",
                    before={"stage": "production"},
                    after={"stage": "archived"},
                )
        conn.execute(
            model_versions.update()
            .where(v.name == version.name, v.version == version.version)
            .values(stage=stage)
        )
        self._audit.record(
            conn,
            actor=self._actor,
            action="model.stage",
            entity_kind="model_version",
            entity_id=version.ref,
            before={"stage": current},
            after={"stage": stage},
        )

    # -- promotion requests -----------------------------------------------------------------

    def request(self, reference: str, to: str, reason: str) -> PromotionRequest:
        """Ask for a version to move to a stage or alias; an approver decides.

        Raises:
            InvalidArgumentError: for an empty reason or a bad target.
            ConflictError: if the same request is pending already.
        """
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidArgumentError("a promotion request needs a reason (--reason)")
        kind = "stage" if to in STAGES else "alias"
        if kind == "alias":
            validate_name(to, what="alias")
            _check_alias(to)
        version = self.resolve(reference)
        p = promotion_requests.c
        with self._metadata.write() as conn:
            self._metadata.lock(conn, f"model:{version.name}")
            pending = conn.execute(
                select(p.id).where(
                    p.name == version.name,
                    p.version == version.version,
                    p.target == to,
                    p.status == "pending",
                )
            ).scalar()
            if pending is not None:
                raise ConflictError(
                    f"request {pending} for {version.ref} -> {to} is pending already"
                )
            row: dict[str, Any] = {
                "id": new_id(),
                "name": version.name,
                "version": version.version,
                "target_kind": kind,
                "target": to,
                "reason": reason.strip(),
                "status": "pending",
                "requested_by": self._actor,
                "requested_at": utcnow(),
                "decided_by": None,
                "decided_at": None,
                "comment": None,
            }
            conn.execute(promotion_requests.insert().values(**row))
            self._audit.record(
                conn,
                actor=self._actor,
                action="model.request",
                entity_kind="promotion_request",
                entity_id=row["id"],
                after={"version": version.ref, "to": to, "reason": reason},
            )
        return PromotionRequest(**row)

    def approve(self, request_id: str, comment: str | None = None) -> PromotionRequest:
        """Approve a pending request and apply it, in one transaction.

        Raises:
            PermissionDeniedError: without the approver role, or approving one's own request
                under the two-person rule.
            ConflictError: if the request is not pending.
        """
        return self._decide(request_id, "approved", comment)

    def reject(self, request_id: str, comment: str | None = None) -> PromotionRequest:
        """Reject a pending request.

        Raises:
            PermissionDeniedError: without the approver role.
            ConflictError: if the request is not pending.
        """
        return self._decide(request_id, "rejected", comment)

    def _decide(self, request_id: str, status: str, comment: str | None) -> PromotionRequest:
        p = promotion_requests.c
        with self._metadata.write() as conn:
            row = conn.execute(select(promotion_requests).where(p.id == request_id)).first()
            if row is None:
                raise NotFoundError(f"promotion request {request_id!r} does not exist")
            self._metadata.lock(conn, f"model:{row.name}")
            self._users.require(conn, self._actor, "approver")
            if row.status != "pending":
                raise ConflictError(f"request {request_id} is {row.status} already")
            if self.require_second_person and row.requested_by == self._actor:
                raise PermissionDeniedError(
                    f"{self._actor} requested {request_id}; under the two-person rule "
                    "(registry.require_second_person) another approver must decide"
                )
            if status == "approved":
                version = self.resolve(f"{row.name}@{row.version}")
                if row.target_kind == "stage":
                    self._move_stage(conn, version, row.target)
                else:
                    self._move_alias(conn, version, row.target)
            now = utcnow()
            conn.execute(
                promotion_requests.update()
                .where(p.id == request_id)
                .values(status=status, decided_by=self._actor, decided_at=now, comment=comment)
            )
            self._audit.record(
                conn,
                actor=self._actor,
                action="model.approve" if status == "approved" else "model.reject",
                entity_kind="promotion_request",
                entity_id=request_id,
                before={"status": "pending"},
                after={"status": status, "comment": comment},
            )
            data = {
                **row._mapping,
                "status": status,
                "decided_by": self._actor,
                "decided_at": now,
                "comment": comment,
            }
        return PromotionRequest(**data)

    def cancel(self, request_id: str) -> PromotionRequest:
        """Withdraw a pending request; only its requester (or an admin) may.

        Raises:
            PermissionDeniedError: for anyone else.
            ConflictError: if the request is not pending.
        """
        p = promotion_requests.c
        with self._metadata.write() as conn:
            row = conn.execute(select(promotion_requests).where(p.id == request_id)).first()
            if row is None:
                raise NotFoundError(f"promotion request {request_id!r} does not exist")
            if row.requested_by != self._actor:
                self._users.require(conn, self._actor, "admin")
            if row.status != "pending":
                raise ConflictError(f"request {request_id} is {row.status} already")
            now = utcnow()
            conn.execute(
                promotion_requests.update()
                .where(p.id == request_id)
                .values(status="cancelled", decided_by=self._actor, decided_at=now)
            )
            self._audit.record(
                conn,
                actor=self._actor,
                action="model.cancel",
                entity_kind="promotion_request",
                entity_id=str(request_id),
                before={"status": "pending"},
                after={"status": "cancelled"},
            )
            data: dict[str, Any] = {
                **row._mapping,
                "status": "cancelled",
                "decided_by": self._actor,
                "decided_at": now,
            }
        return PromotionRequest(**data)

    def requests(
        self, *, status: str | None = "pending", name: str | None = None
    ) -> list[PromotionRequest]:
        """Promotion requests, newest first; ``status=None`` for all of them."""
        p = promotion_requests.c
        query = select(promotion_requests).order_by(p.requested_at.desc())
        if status is not None:
            query = query.where(p.status == status)
        if name is not None:
            query = query.where(p.name == name)
        with self._metadata.read() as conn:
            return [PromotionRequest(**r._mapping) for r in conn.execute(query)]


# Limits of a registered model's description and tags, as the HTTP schemas have them.
_MAX_DESCRIPTION = 100_000
_MAX_TAG_KEY = 255
_MAX_TAG_VALUE = 6000


def _check_text(value: object, what: str, limit: int) -> str:
    # PostgreSQL's text columns cannot hold NUL: refused here rather than failing there.
    if not isinstance(value, str) or len(value) > limit or "\0" in value:
        raise InvalidArgumentError(
            f"{what} must be text of at most {limit:,} characters without NUL, "
            f"not {str(value)[:40]!r}"
        )
    return value


def _check_tags(tags: Mapping[str, str | None]) -> dict[str, str | None]:
    if not isinstance(tags, Mapping):
        raise InvalidArgumentError("tags are a mapping of names to text values")
    checked: dict[str, str | None] = {}
    for key, value in tags.items():
        _check_text(key, "a tag name", _MAX_TAG_KEY)
        if not key:
            raise InvalidArgumentError("a tag name cannot be empty")
        checked[key] = None if value is None else _check_text(value, f"tag {key!r}", _MAX_TAG_VALUE)
    return checked


def _protected(kind: str, target: str, reference: str) -> PermissionDeniedError:
    return PermissionDeniedError(
        f"{kind} {target!r} is protected: request it with `shipyard models request "
        f"{reference} --to {target} --reason ...` and have an approver approve it"
    )


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise InvalidArgumentError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")


def _check_alias(alias: str) -> None:
    if alias == LATEST or alias.isdigit() or alias in STAGES:
        raise InvalidArgumentError(f"{alias!r} cannot be an alias: it reads as a version or stage")


def _version(row: Mapping[str, Any] | RowMapping, aliases: Sequence[str]) -> ModelVersion:
    return ModelVersion(
        id=row["id"],
        name=row["name"],
        version=row["version"],
        flavor=row["flavor"],
        run_id=row["run_id"],
        manifest_digest=row["manifest"],
        signature=Signature.from_dict(json.loads(row["signature"])) if row["signature"] else None,
        requirements=tuple(json.loads(row["requirements"])),
        onnx_status=row["onnx_status"],
        onnx_max_diff=row["onnx_max_diff"],
        onnx_reason=row["onnx_reason"],
        stage=row["stage"],
        aliases=tuple(aliases),
        description=row["description"],
        tags=json.loads(row["tags"]),
        created_at=row["created_at"],
        created_by=row["created_by"],
    )

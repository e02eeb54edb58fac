"""Models: signatures, registered models, versions, aliases, stages and promotion requests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shipyard.errors import InvalidArgumentError

__all__ = [
    "ROLES",
    "STAGES",
    "ColumnSpec",
    "ModelVersion",
    "PromotionRequest",
    "RegisteredModel",
    "Signature",
    "infer_signature",
]

STAGES = ("none", "staging", "production", "archived")
ROLES = ("viewer", "editor", "approver", "admin")


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One input or output column: name, type (``float64``, ``int64``, ``string``, ``bool``)."""

    name: str
    type: str
    nullable: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"name": self.name, "type": self.type, "nullable": self.nullable}


@dataclass(frozen=True, slots=True)
class Signature:
    """What a model takes and returns."""

    inputs: tuple[ColumnSpec, ...]
    outputs: tuple[ColumnSpec, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "inputs": [c.to_dict() for c in self.inputs],
            "outputs": [c.to_dict() for c in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        """Read the form ``to_dict`` writes.

        Raises:
            InvalidArgumentError: if a column lacks a name or type.
        """
        try:
            inputs = tuple(ColumnSpec(**c) for c in data.get("inputs", []))
            outputs = tuple(ColumnSpec(**c) for c in data.get("outputs", []))
        except TypeError as exc:
            raise InvalidArgumentError(f"malformed signature: {exc}") from None
        return cls(inputs, outputs)


def _kind(dtype: Any) -> str:
    text = str(dtype)
    if text.startswith(("float", "double", "Float")):
        return "float64"
    if text.startswith(("int", "uint", "Int", "UInt")):
        return "int64"
    if text in ("bool", "boolean"):
        return "bool"
    return "string"


def infer_signature(example: Any, output: Any = None) -> Signature:
    """Infer a signature from an input example (pandas, polars, pyarrow, numpy, dict).

    Args:
        example: a few rows of model input.
        output: optionally, the model's predictions for them.

    Raises:
        InvalidArgumentError: for an example of a type that has no columns.
    """
    return Signature(
        _columns(example, "input"), _columns(output, "output") if output is not None else ()
    )


def _columns(example: Any, what: str) -> tuple[ColumnSpec, ...]:
    module = type(example).__module__.split(".")[0]
    if module == "pandas" and hasattr(example, "dtypes"):
        if hasattr(example, "columns"):
            return tuple(
                ColumnSpec(str(n), _kind(t), bool(example[n].isna().any()))
                for n, t in example.dtypes.items()
            )
        return (ColumnSpec(str(example.name or what), _kind(example.dtype)),)
    if module == "polars":
        return tuple(ColumnSpec(n, _kind(str(t).lower())) for n, t in example.schema.items())
    if module == "pyarrow":
        return tuple(
            ColumnSpec(f.name, _kind(f.type), f.nullable and example.column(f.name).null_count > 0)
            for f in example.schema
        )
    if module == "numpy":
        if example.ndim == 1:
            return (ColumnSpec(what, _kind(example.dtype)),)
        if example.ndim == 2:
            return tuple(
                ColumnSpec(f"{what}_{i}", _kind(example.dtype)) for i in range(example.shape[1])
            )
        raise InvalidArgumentError(f"a {example.ndim}-dimensional array has no columns")
    if isinstance(example, Mapping):
        return tuple(
            ColumnSpec(str(k), _kind(type(_first(v)).__name__)) for k, v in example.items()
        )
    if isinstance(example, list) and example and isinstance(example[0], Mapping):
        return tuple(ColumnSpec(str(k), _kind(type(v).__name__)) for k, v in example[0].items())
    raise InvalidArgumentError(
        f"cannot infer a signature from {type(example).__name__}: pass a DataFrame, an "
        "Arrow table, a 2-D array, or a dict of columns"
    )


def _first(values: Any) -> Any:
    if isinstance(values, (list, tuple)) and values:
        return values[0]
    return values


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    """A named model; its versions are numbered 1, 2, …."""

    name: str
    description: str | None
    tags: Mapping[str, str]
    created_at: datetime
    created_by: str
    latest_version: int | None = None
    aliases: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "name": self.name,
            "description": self.description,
            "tags": dict(self.tags),
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "latest_version": self.latest_version,
            "aliases": dict(self.aliases),
        }


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """An immutable model version ``name@N`` with its files, signature and ONNX export."""

    id: str
    name: str
    version: int
    flavor: str
    run_id: str | None
    manifest_digest: str
    signature: Signature | None
    requirements: tuple[str, ...]
    onnx_status: str  # attached | rejected | unavailable
    onnx_max_diff: float | None
    onnx_reason: str | None
    stage: str
    aliases: tuple[str, ...]
    description: str | None
    tags: Mapping[str, str]
    created_at: datetime
    created_by: str

    @property
    def ref(self) -> str:
        """The reference ``name@version``."""
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "ref": self.ref,
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "flavor": self.flavor,
            "run_id": self.run_id,
            "manifest_digest": self.manifest_digest,
            "signature": self.signature.to_dict() if self.signature else None,
            "requirements": list(self.requirements),
            "onnx": {
                "status": self.onnx_status,
                "max_diff": self.onnx_max_diff,
                "reason": self.onnx_reason,
            },
            "stage": self.stage,
            "aliases": list(self.aliases),
            "description": self.description,
            "tags": dict(self.tags),
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelVersion:
        """Read the form ``to_dict`` writes (the ONNX report nested under ``onnx``)."""
        from shipyard.domain.records import from_record

        onnx = data.get("onnx") or {}
        flat = {
            **data,
            "onnx_status": onnx.get("status"),
            "onnx_max_diff": onnx.get("max_diff"),
            "onnx_reason": onnx.get("reason"),
        }
        return from_record(cls, flat, own=False)


@dataclass(frozen=True, slots=True)
class PromotionRequest:
    """A request to move a version to a protected stage or alias, and its decision."""

    id: str
    name: str
    version: int
    target_kind: str  # stage | alias
    target: str
    reason: str
    status: str  # pending | approved | rejected | cancelled
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    comment: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "id": self.id,
            "model_version": f"{self.name}@{self.version}",
            "name": self.name,
            "version": self.version,
            "target_kind": self.target_kind,
            "target": self.target,
            "reason": self.reason,
            "status": self.status,
            "requested_by": self.requested_by,
            "requested_at": self.requested_at.isoformat(),
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "comment": self.comment,
        }

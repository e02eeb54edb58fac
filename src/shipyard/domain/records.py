"""Domain records back from JSON: one decoder, driven by the dataclass's type hints.

Every record serialises with its ``to_dict``; ``from_record(Cls, data)`` rebuilds it, so the
remote client returns the same objects as the local services without a hand-written decoder
per class. Datetimes come back from ISO strings, floats from the JSON spelling of
``domain.numbers`` (``"NaN"``, ``"Infinity"``), nested records, lists, tuples and
dictionaries by their declared item types.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from shipyard.domain.numbers import float_from_json
from shipyard.errors import InvalidArgumentError

__all__ = ["from_record"]

T = TypeVar("T")


def from_record(cls: type[T], data: Mapping[str, Any], *, own: bool = True) -> T:
    """Rebuild a dataclass record from its JSON form.

    Keys the class does not declare are ignored (a newer server may send more); a missing
    field takes its default. A class with its own ``from_dict`` (a form that is not one key
    a field) is read by it, here and wherever the class is nested; ``own=False`` is how
    such a ``from_dict`` reads the fields it flattened.

    Raises:
        InvalidArgumentError: when a value does not fit the declared type, naming the field.
    """
    if not own:
        return typing.cast(T, _record(cls, data, cls.__name__))
    return typing.cast(T, _decode(cls, data, cls.__name__))


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _record(cls: type, data: object, where: str) -> object:
    if not isinstance(data, Mapping):
        raise InvalidArgumentError(f"{where}: expected an object, got {type(data).__name__}")
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        if field.name not in data:
            no_default = (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            )
            if no_default:
                raise InvalidArgumentError(f"{where}: missing field {field.name!r}")
            continue
        values[field.name] = _decode(hints[field.name], data[field.name], f"{where}.{field.name}")
    return cls(**values)


def _decode(kind: Any, value: object, where: str) -> object:
    if kind is Any or kind is object:
        return value
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _decode(option, value, where)
            except (InvalidArgumentError, TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise InvalidArgumentError(f"{where}: {value!r} fits none of {options} ({errors})")
    if origin is typing.Literal:
        if value not in args:
            raise InvalidArgumentError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin in (list, tuple, set, frozenset) or origin is typing.Sequence:
        if not isinstance(value, list | tuple):
            raise InvalidArgumentError(f"{where}: expected a list, got {type(value).__name__}")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(args) != len(value):
                raise InvalidArgumentError(f"{where}: expected {len(args)} items, got {len(value)}")
            pairs = enumerate(zip(args, value, strict=True))
            return tuple(_decode(a, v, f"{where}[{i}]") for i, (a, v) in pairs)
        item = args[0] if args else Any
        decoded = [_decode(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        if origin is typing.Sequence or origin is list:
            return decoded
        return origin(decoded)
    if origin in (dict, Mapping) or origin is typing.Mapping:
        if not isinstance(value, Mapping):
            raise InvalidArgumentError(f"{where}: expected an object, got {type(value).__name__}")
        item = args[1] if len(args) == 2 else Any
        return {k: _decode(item, v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(kind, type):
        return _scalar(kind, value, where)
    return value


def _scalar(kind: type, value: object, where: str) -> object:
    if dataclasses.is_dataclass(kind):
        reader = getattr(kind, "from_dict", None)
        if reader is not None:
            if not isinstance(value, Mapping):
                raise InvalidArgumentError(f"{where}: expected an object, got {value!r}")
            return reader(value)
        return _record(kind, value, where)
    if kind is datetime:
        if isinstance(value, datetime):
            return value
        if not isinstance(value, str):
            raise InvalidArgumentError(f"{where}: expected an ISO time, got {value!r}")
        return datetime.fromisoformat(value)
    if kind is float:
        try:
            return float_from_json(value)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"{where}: {exc}") from None
    if kind is bool:
        if not isinstance(value, bool):
            raise InvalidArgumentError(f"{where}: expected true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgumentError(f"{where}: expected an integer, got {value!r}")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise InvalidArgumentError(f"{where}: expected text, got {value!r}")
        return value
    if kind in (dict, list):
        if not isinstance(value, kind):
            raise InvalidArgumentError(f"{where}: expected {kind.__name__}, got {value!r}")
        return value
    if isinstance(value, kind):
        return value
    raise InvalidArgumentError(f"{where}: expected {kind.__name__}, got {value!r}")

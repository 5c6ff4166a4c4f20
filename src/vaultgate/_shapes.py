"""Vault answers into the SDK's frozen dataclasses (``_models``), checked field by field.

The official client validates the same answers with pydantic; this does the part the SDK needs
with the standard library: the JSON types, ISO datetimes, UUIDs, tuples and nested records. A
field the vault adds later is ignored; a missing or mistyped one is a ``ShapeError``, which the
verbs turn into a ``BackendError`` (``invalid_response``), as the official client does.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

T = TypeVar("T")


class ShapeError(ValueError):
    """The answer does not have the documented shape; the text names the field, not its value."""


@functools.cache
def _hints(cls: type[Any]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def parse(cls: type[T], data: object, where: str = "answer") -> T:
    """``cls`` built from the JSON object ``data``."""
    if not isinstance(data, dict):
        raise ShapeError(f"{where} is not a JSON object")
    hints = _hints(typing.cast(type, cls))
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
        optional = spec.default is not dataclasses.MISSING or (
            spec.default_factory is not dataclasses.MISSING
        )
        if spec.name not in data:
            if optional and not spec.metadata.get("required"):
                continue
            raise ShapeError(f"{where}.{spec.name} is missing")
        values[spec.name] = _coerce(hints[spec.name], data[spec.name], f"{where}.{spec.name}")
    return cls(**values)


def _coerce(kind: Any, value: object, where: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        if value is None and len(options) < len(typing.get_args(kind)):
            return None
        return _coerce(options[0], value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise ShapeError(f"{where} is not a list")
        item = typing.get_args(kind)[0]
        return tuple(_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ShapeError(f"{where} is not an object")
        if typing.get_args(kind)[1] is str and not all(isinstance(v, str) for v in value.values()):
            raise ShapeError(f"{where} has values that are not strings")
        return dict(value)
    if dataclasses.is_dataclass(kind):
        return parse(kind, value, where)  # type: ignore[arg-type]
    return _scalar(kind, value, where)


def _scalar(kind: Any, value: object, where: str) -> Any:
    if kind is Any:
        return value
    if kind in (datetime, UUID):
        if not isinstance(value, str):
            raise ShapeError(f"{where} is not a string")
        try:
            return datetime.fromisoformat(value) if kind is datetime else UUID(value)
        except ValueError:
            raise ShapeError(f"{where} is not a valid {kind.__name__}") from None
    if kind is int and isinstance(value, bool):
        raise ShapeError(f"{where} is not an integer")
    if not isinstance(value, kind):
        raise ShapeError(f"{where} is not a {kind.__name__}")
    return value

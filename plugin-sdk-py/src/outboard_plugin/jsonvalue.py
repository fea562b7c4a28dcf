"""Conversions between ``google.protobuf.Struct`` / ``Value`` and plain
Python JSON values (``dict``, ``list``, ``str``, ``int``, ``float``,
``bool``, ``None``).

A protobuf number is a double: converting back, an integral number within
±2^53 becomes an ``int`` so that ``3`` stays ``3``, not ``3.0``, as the host
does (PROTOCOL.md §8.1). A NaN or infinite number has no JSON form and
becomes ``None``; an unset ``Value`` is ``None`` too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from google.protobuf import struct_pb2

#: The largest integer a double holds exactly.
MAX_SAFE_INTEGER = 2**53


def struct_to_dict(s: struct_pb2.Struct | None) -> dict[str, Any]:
    """A ``Struct`` as a ``dict``; ``None`` (an absent field) as ``{}``."""
    if s is None:
        return {}
    return {key: value_to_python(value) for key, value in s.fields.items()}


def value_to_python(v: struct_pb2.Value) -> Any:
    """A protobuf ``Value`` as a Python JSON value."""
    # The kinds in the order they are common in a job context.
    kind = v.WhichOneof("kind")
    if kind == "string_value":
        return v.string_value
    if kind == "struct_value":
        return struct_to_dict(v.struct_value)
    if kind == "number_value":
        n = v.number_value
        if not math.isfinite(n):
            return None
        if n.is_integer() and abs(n) <= MAX_SAFE_INTEGER:
            return int(n)
        return n
    if kind == "bool_value":
        return v.bool_value
    if kind == "list_value":
        return [value_to_python(item) for item in v.list_value.values]
    return None


def dict_to_struct(d: Mapping[str, Any]) -> struct_pb2.Struct:
    """A mapping of JSON values as a ``Struct``; raises ``TypeError`` naming
    the key of a value that is not JSON."""
    s = struct_pb2.Struct()
    _fill_struct(s, d, "")
    return s


def python_to_value(value: Any) -> struct_pb2.Value:
    """A Python JSON value as a protobuf ``Value``; raises ``TypeError`` for
    anything else (a ``set``, a ``datetime``, ...)."""
    v = struct_pb2.Value()
    _fill_value(v, value, "")
    return v


def check_json(value: Any) -> None:
    """Raises what :func:`python_to_value` would raise for ``value`` (the
    same ``TypeError`` naming the place), without building the message:
    checking a value is several times cheaper than converting it."""
    _check_value(value, "")


def fill_value(v: struct_pb2.Value, value: Any) -> None:
    """Sets ``v`` (say, a field of a message being built) to ``value``, as
    :func:`python_to_value` would make it, without the copy."""
    _fill_value(v, value, "")


def _check_value(value: Any, at: str) -> None:
    # The same order and the same errors as _fill_value; setting a string
    # field raises UnicodeEncodeError for a lone surrogate, and a number
    # field OverflowError for an int too large for a double.
    kind = type(value)
    if kind is str:
        if not value.isascii():
            value.encode("utf-8")
    elif kind is dict:
        _check_object(value, at)
    elif kind is list:
        for i, item in enumerate(value):
            _check_value(item, f"{at}/{i}")
    elif value is None or isinstance(value, bool):
        return
    elif isinstance(value, (int, float)):
        float(value)
    elif isinstance(value, str):
        if not value.isascii():
            value.encode("utf-8")
    elif isinstance(value, Mapping):
        _check_object(value, at)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_value(item, f"{at}/{i}")
    else:
        raise TypeError(f"{at or '/'}: {type(value).__name__} is not a JSON value")


def _check_object(value: Mapping[Any, Any], at: str) -> None:
    for key, item in value.items():
        if not isinstance(key, str):
            raise TypeError(f"{at or '/'}: object key {key!r} is not a string")
        if not key.isascii():
            key.encode("utf-8")
        _check_value(item, f"{at}/{key}")


def _fill_struct(s: struct_pb2.Struct, d: Mapping[str, Any], at: str) -> None:
    for key, item in d.items():
        if not isinstance(key, str):
            raise TypeError(f"{at or '/'}: object key {key!r} is not a string")
        _fill_value(s.fields[key], item, f"{at}/{key}")


def _fill_value(v: struct_pb2.Value, value: Any, at: str) -> None:
    # The exact common types first (a str, a dict or a list is nothing
    # else below, and the Mapping check is slow for them); then bool before
    # int: True is an int in Python.
    kind = type(value)
    if kind is str:
        v.string_value = value
    elif kind is dict:
        # SetInParent: an empty object must still be an object, not "no kind".
        v.struct_value.SetInParent()
        _fill_struct(v.struct_value, value, at)
    elif kind is list:
        items = v.list_value
        items.SetInParent()
        for i, item in enumerate(value):
            _fill_value(items.values.add(), item, f"{at}/{i}")
    elif value is None:
        v.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        v.bool_value = value
    elif isinstance(value, (int, float)):
        v.number_value = float(value)
    elif isinstance(value, str):
        v.string_value = value
    elif isinstance(value, Mapping):
        v.struct_value.SetInParent()
        _fill_struct(v.struct_value, value, at)
    elif isinstance(value, (list, tuple)):
        items = v.list_value
        items.SetInParent()
        for i, item in enumerate(value):
            _fill_value(items.values.add(), item, f"{at}/{i}")
    else:
        raise TypeError(f"{at or '/'}: {type(value).__name__} is not a JSON value")

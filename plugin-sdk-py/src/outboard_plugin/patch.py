"""Patches: ordered set / remove operations on the JSON context at RFC 6901
JSON Pointers (PROTOCOL.md §8.5).

:class:`~outboard_plugin.Reply` builds them; :func:`apply` applies them with
the host's rules, for :mod:`outboard_plugin.testing`.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

#: The deepest a patch may write (PROTOCOL.md §8.5).
MAX_DEPTH = 32

_INDEX = re.compile(r"0|[1-9][0-9]*")
#: A ``~`` not followed by ``0`` or ``1``.
_BAD_ESCAPE = re.compile(r"~(?![01])")


class PatchError(ValueError):
    """A pointer that is not valid, or an operation that cannot be applied."""


def escape(key: str) -> str:
    """One reference token for ``key``: ``~`` becomes ``~0`` first, then
    ``/`` becomes ``~1``."""
    return key.replace("~", "~0").replace("/", "~1")


def pointer(*keys: str | int) -> str:
    """The JSON Pointer to ``keys``, each escaped: ``pointer("env", "A/B")``
    is ``/env/A~1B``."""
    if not keys:
        raise PatchError("a pointer needs at least one key: the empty pointer would replace the whole context")
    return "".join("/" + escape(str(k)) for k in keys)


def parse(path: str) -> list[str]:
    """The unescaped reference tokens of ``path``; raises :class:`PatchError`
    with the host's wording if it is not a pointer a patch may use."""

    def bad(why: str) -> PatchError:
        return PatchError(f"path {path!r} is not a valid JSON Pointer: {why}")

    if path == "":
        raise bad("the empty pointer would replace the whole context")
    if not path.startswith("/"):
        raise bad("a JSON Pointer starts with '/'")
    raw = path[1:].split("/")
    if len(raw) > MAX_DEPTH:
        raise bad(
            f"it is {len(raw)} levels deep; a patch may reach at most {MAX_DEPTH} levels "
            "(deeper contexts cannot travel as protobuf messages)"
        )
    tokens = []
    for token in raw:
        if "~" in token and _BAD_ESCAPE.search(token):
            raise bad("'~' must be followed by '0' or '1'")
        tokens.append(token.replace("~1", "/").replace("~0", "~"))
    return tokens


@dataclass(frozen=True)
class PatchOp:
    """One operation: ``set`` (with a value) or ``remove``."""

    #: ``"set"`` or ``"remove"``.
    op: str
    #: The JSON Pointer, as written.
    path: str
    #: The new value for ``set``; ``None`` for ``remove``.
    value: Any = None


def apply(context: dict[str, Any], ops: list[PatchOp]) -> dict[str, Any]:
    """``context`` with ``ops`` applied in order, all or nothing, as the host
    applies a patch; raises :class:`PatchError` naming the path and why."""
    out = copy.deepcopy(context)
    for op in ops:
        tokens = parse(op.path)
        if op.op == "set":
            _set(out, tokens, copy.deepcopy(op.value), op.path)
        elif op.op == "remove":
            _remove(out, tokens)
        else:
            raise PatchError(f"unknown patch operation {op.op!r} at {op.path}")
    return out


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


def _set(root: dict[str, Any], tokens: list[str], value: Any, path: str) -> None:
    at: Any = root
    for depth, token in enumerate(tokens[:-1]):
        where = pointer(*tokens[: depth + 1])
        if isinstance(at, dict):
            if token not in at:
                at[token] = {}
            at = at[token]
        elif isinstance(at, list):
            if not _INDEX.fullmatch(token) or int(token) >= len(at):
                raise PatchError(
                    f"cannot set {path}: {token!r} is not an index into the array at "
                    f"{pointer(*tokens[:depth]) if depth else '/'} (length {len(at)})"
                )
            at = at[int(token)]
        if not isinstance(at, (dict, list)):
            raise PatchError(f"cannot set {path}: {where} is {_kind(at)}, not an object or array")
    last = tokens[-1]
    if isinstance(at, dict):
        at[last] = value
    elif isinstance(at, list):
        if last == "-":
            at.append(value)
        elif _INDEX.fullmatch(last) and int(last) < len(at):
            at[int(last)] = value
        else:
            parent = pointer(*tokens[:-1]) if len(tokens) > 1 else "/"
            raise PatchError(
                f"cannot set {path}: {last!r} is not an index into the array at {parent} (length {len(at)})"
            )


def _remove(root: dict[str, Any], tokens: list[str]) -> None:
    at: Any = root
    for token in tokens[:-1]:
        if isinstance(at, dict) and token in at:
            at = at[token]
        elif isinstance(at, list) and _INDEX.fullmatch(token) and int(token) < len(at):
            at = at[int(token)]
        else:
            return
    last = tokens[-1]
    if isinstance(at, dict):
        at.pop(last, None)
    elif isinstance(at, list) and _INDEX.fullmatch(last) and int(last) < len(at):
        del at[int(last)]

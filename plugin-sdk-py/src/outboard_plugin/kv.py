"""The key-value store the host keeps for a plugin (PROTOCOL.md §17.4), in
its own namespace or a shared one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from google.protobuf import duration_pb2, empty_pb2

from ._proto import host_pb2
from .host import Transport

#: What a value may be given as: bytes, or text stored as UTF-8.
Value = bytes | str
#: An expiry: seconds, or a ``timedelta``; ``None`` for never.
Ttl = float | timedelta | None


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


#: For :meth:`Kv.compare_and_set`: the key must be absent (create-if-absent).
ABSENT: Final = _Absent()


@dataclass(frozen=True)
class Entry:
    """A live key and its value."""

    #: The key.
    key: str
    #: The value, byte for byte (empty in a ``keys_only`` listing).
    value: bytes
    #: When the key expires (seconds since the epoch), or ``None``.
    expires: float | None = None

    def text(self) -> str:
        """The value as UTF-8 text."""
        return self.value.decode()


@dataclass(frozen=True)
class CasResult:
    """What :meth:`Kv.compare_and_set` did; true if it swapped."""

    #: ``True`` if the expectation held and the value was written.
    swapped: bool
    #: When not swapped: the key's current value, ``None`` if absent.
    current: bytes | None = None

    def __bool__(self) -> bool:
        return self.swapped


@dataclass(frozen=True)
class Page:
    """One page of a listing."""

    #: Live entries in ascending byte order of the key.
    entries: list[Entry]
    #: The token of the next page, or ``None`` at the end (a short page is
    #: not the end).
    next: str | None


class Kv:
    """The key-value store: the plugin's own namespace (permission ``kv``),
    or a shared one from :meth:`shared` (``kv:shared:NAME``). Values are
    bytes (``str`` is stored as UTF-8); keys are UTF-8, 1 to 512 bytes.

    Example::

        kv = invocation.kv()
        kv.set("last-run", "2026-01-01", ttl=3600)
        entry = kv.get("last-run")
        if kv.compare_and_set("lock", ABSENT, "me"):
            ...
    """

    def __init__(self, transport: Transport, namespace: str = "") -> None:
        self._transport = transport
        #: Empty: the plugin's own namespace; else a shared namespace's name.
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"Kv(namespace={self.namespace!r})"

    def shared(self, name: str) -> Kv:
        """The shared namespace ``name``, which every plugin granted
        ``kv:shared:NAME`` sees."""
        return Kv(self._transport, name)

    def get(self, key: str) -> Entry | None:
        """The live value of ``key``, or ``None`` if absent or expired."""
        r = self._transport.call("KvGet", host_pb2.KvGetRequest(namespace=self.namespace, key=key))
        if not r.found:
            return None
        return Entry(key, bytes(r.value), _expiry(r, "expire_time"))

    def set(self, key: str, value: Value, ttl: Ttl = None) -> None:
        """Writes ``key``, expiring after ``ttl`` (a write without one
        removes an earlier expiry). Durable when it returns."""
        request = host_pb2.KvSetRequest(namespace=self.namespace, key=key, value=_bytes(value), ttl=_duration(ttl))
        self._transport.call("KvSet", request)

    def delete(self, key: str) -> bool:
        """Removes ``key``; ``True`` if a live key was removed."""
        r = self._transport.call("KvDelete", host_pb2.KvDeleteRequest(namespace=self.namespace, key=key))
        return bool(r.deleted)

    def compare_and_set(self, key: str, expected: Value | _Absent, value: Value, ttl: Ttl = None) -> CasResult:
        """Writes ``value`` only if ``key`` holds ``expected`` (or is absent,
        for :data:`ABSENT`), atomically with every other write to it."""
        request = host_pb2.KvCompareAndSetRequest(
            namespace=self.namespace, key=key, value=_bytes(value), ttl=_duration(ttl)
        )
        if isinstance(expected, _Absent):
            request.expected_absent.CopyFrom(empty_pb2.Empty())
        else:
            request.expected_value = _bytes(expected)
        r = self._transport.call("KvCompareAndSet", request)
        if r.swapped:
            return CasResult(True)
        return CasResult(False, bytes(r.current_value) if r.found else None)

    def list_page(self, prefix: str = "", *, page_size: int = 0, page_token: str = "", keys_only: bool = False) -> Page:
        """One page of the keys starting with ``prefix``."""
        request = host_pb2.KvListRequest(
            namespace=self.namespace, prefix=prefix, page_size=page_size, page_token=page_token, keys_only=keys_only
        )
        r = self._transport.call("KvList", request)
        entries = [Entry(e.key, bytes(e.value), _expiry(e, "expire_time")) for e in r.entries]
        return Page(entries, r.next_page_token or None)

    def list(self, prefix: str = "", *, keys_only: bool = False) -> Iterator[Entry]:
        """Every key starting with ``prefix``, fetched a page at a time as
        the iteration goes."""
        token = ""
        while True:
            page = self.list_page(prefix, page_token=token, keys_only=keys_only)
            yield from page.entries
            if page.next is None:
                return
            token = page.next


def _bytes(value: Value) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _duration(ttl: Ttl) -> duration_pb2.Duration | None:
    if ttl is None:
        return None
    d = duration_pb2.Duration()
    d.FromTimedelta(ttl if isinstance(ttl, timedelta) else timedelta(seconds=ttl))
    return d


def _expiry(message: Any, field: str) -> float | None:
    if not message.HasField(field):
        return None
    return float(getattr(message, field).ToNanoseconds() / 1e9)

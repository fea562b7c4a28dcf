"""Host services in memory, for unit tests (:class:`FakeHost`), with the
host's rules (PROTOCOL.md §17): namespaces, expiry on a clock the test
moves, compare-and-set, the size limits, paging, optional grants and token,
secrets from a dict, and every publish recorded.

The fake is a ``HostService`` servicer: a plugin under test reaches it in
process through :meth:`FakeHost.services`, and a test may also serve it on
a socket with :meth:`FakeHost.add_to_server`.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc
from google.protobuf import timestamp_pb2

from ._proto import host_pb2
from .events import glob_match
from .host import HostError, HostServices
from .jsonvalue import value_to_python

#: The default limits of PROTOCOL.md §17.5.
VALUE_SIZE = 65_536
NAMESPACE_TOTAL = 16 * 1024 * 1024
PAYLOAD_SIZE = 262_144
_PAGE_DEFAULT, _PAGE_MAX, _MAX_KEY = 100, 1000, 512
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_SECRET_NAME = re.compile(r"[a-zA-Z0-9_.-]{1,64}")
_RESERVED = ("plugin.", "job.", "reload.", "host.")


class _Refused(Exception):
    """An in-process call answered with an error status."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


class _LocalContext:
    """The part of a servicer context the fake uses, for in-process calls."""

    def __init__(self, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise _Refused(code, details)


@dataclass
class Published:
    """An event a plugin published through the fake."""

    #: The id the fake answered with: ``fake-1``, ``fake-2``, ...
    id: str
    name: str
    payload: Any


@dataclass
class _Stored:
    value: bytes
    expires: float | None


@dataclass
class FakeHost:
    """Host services in memory. ``grants=None`` allows every call; a list
    checks them as the host does. ``token`` set: calls must carry it."""

    #: The calling plugin's instance name (its namespace, the messages).
    plugin: str = "plugin"
    #: The permissions granted; ``None``: everything is allowed.
    grants: list[str] | None = None
    #: The configured secrets.
    secrets: dict[str, bytes | str] = field(default_factory=dict)
    value_size: int = VALUE_SIZE
    namespace_total: int = NAMESPACE_TOTAL
    token: str | None = field(default=None, repr=False)
    #: The fake clock (seconds since the epoch); move it with :meth:`advance`.
    now: float = field(default_factory=time.time)
    #: Every event published, in order.
    published: list[Published] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._store: dict[str, dict[str, _Stored]] = {}
        self._ids = itertools.count(1)
        self._keys: dict[str, str] = {}

    def advance(self, seconds: float) -> None:
        """Moves the clock forward: keys whose expiry passes vanish."""
        self.now += seconds

    def services(self) -> HostServices:
        """The handle a plugin under test calls (in process, no socket)."""
        return HostServices(_InProcess(self))

    def add_to_server(self, server: grpc.Server) -> None:
        """Serves the fake on ``server`` (a test's socket)."""
        from ._proto import host_pb2_grpc

        host_pb2_grpc.add_HostServiceServicer_to_server(self, server)

    def value(self, key: str, shared: str | None = None) -> bytes | None:
        """The live value of ``key`` in the plugin's namespace or ``shared``."""
        with self._lock:
            stored = self._live(self._namespace(shared or ""), key)
            return None if stored is None else stored.value

    # --- the calls (servicer methods) -----------------------------------

    def KvGet(self, request: host_pb2.KvGetRequest, context: Any) -> host_pb2.KvGetResponse:
        ns, _ = self._access(context, request.namespace)
        _key(context, request.key)
        with self._lock:
            stored = self._live(ns, request.key)
        if stored is None:
            return host_pb2.KvGetResponse()
        return host_pb2.KvGetResponse(found=True, value=stored.value, expire_time=_timestamp(stored.expires))

    def KvSet(self, request: host_pb2.KvSetRequest, context: Any) -> host_pb2.KvSetResponse:
        ns, label = self._access(context, request.namespace)
        _key(context, request.key)
        expires = self._expiry(context, request)
        with self._lock:
            self._write(context, ns, label, request.key, _Stored(request.value, expires))
        return host_pb2.KvSetResponse()

    def KvDelete(self, request: host_pb2.KvDeleteRequest, context: Any) -> host_pb2.KvDeleteResponse:
        ns, _ = self._access(context, request.namespace)
        _key(context, request.key)
        with self._lock:
            live = self._live(ns, request.key) is not None
            self._store.get(ns, {}).pop(request.key, None)
        return host_pb2.KvDeleteResponse(deleted=live)

    def KvList(self, request: host_pb2.KvListRequest, context: Any) -> host_pb2.KvListResponse:
        ns, _ = self._access(context, request.namespace)
        if len(request.prefix.encode()) > _MAX_KEY:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"prefix: longer than {_MAX_KEY} bytes")
        if request.page_size < 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"page_size: negative ({request.page_size})")
        size = min(request.page_size or _PAGE_DEFAULT, _PAGE_MAX)
        after = _token_key(context, request.page_token, ns, request.prefix)
        with self._lock:
            keys = sorted(
                k for k in self._store.get(ns, {})
                if k.startswith(request.prefix) and (after is None or k > after) and self._live(ns, k)
            )
            page = keys[:size]
            entries = [
                host_pb2.KvEntry(
                    key=k,
                    value=b"" if request.keys_only else self._store[ns][k].value,
                    expire_time=_timestamp(self._store[ns][k].expires),
                )
                for k in page
            ]
        more = len(keys) > size
        token = f"{ns}\0{request.prefix}\0{page[-1]}".encode().hex() if more else ""
        return host_pb2.KvListResponse(entries=entries, next_page_token=token)

    def KvCompareAndSet(
        self, request: host_pb2.KvCompareAndSetRequest, context: Any
    ) -> host_pb2.KvCompareAndSetResponse:
        ns, label = self._access(context, request.namespace)
        _key(context, request.key)
        which = request.WhichOneof("expected")
        if which is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "expected: neither expected_value nor expected_absent is set")
        expires = self._expiry(context, request)
        # One lock across the read and the write: that is the atomicity.
        with self._lock:
            current = self._live(ns, request.key)
            holds = current is None if which == "expected_absent" else (
                current is not None and current.value == request.expected_value
            )
            if not holds:
                return host_pb2.KvCompareAndSetResponse(
                    found=current is not None, current_value=b"" if current is None else current.value
                )
            self._write(context, ns, label, request.key, _Stored(request.value, expires))
        return host_pb2.KvCompareAndSetResponse(swapped=True)

    def GetSecret(self, request: host_pb2.GetSecretRequest, context: Any) -> host_pb2.GetSecretResponse:
        self._authenticate(context)
        name = request.name
        if not _SECRET_NAME.fullmatch(name):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"name: {name!r} is not 1 to 64 characters of [a-zA-Z0-9_.-]")
        # The grant first, so that a plugin cannot probe which secrets exist.
        self._require(context, f"secret:{name}")
        if name not in self.secrets:
            context.abort(grpc.StatusCode.NOT_FOUND, f"secret {name!r} is granted but not configured")
        value = self.secrets[name]
        return host_pb2.GetSecretResponse(value=value.encode() if isinstance(value, str) else value)

    def Publish(self, request: host_pb2.PublishRequest, context: Any) -> host_pb2.PublishResponse:
        self._authenticate(context)
        name = request.name
        _name_rule(context, "name", name, 128)
        if name.startswith(_RESERVED):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"name: {name!r} is reserved for the host's own events")
        self._require(context, f"event:publish:{name}")
        payload = value_to_python(request.payload) if request.HasField("payload") else None
        size = len(request.payload.SerializeToString())
        if size > PAYLOAD_SIZE:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"event payload size: {size} bytes > limit {PAYLOAD_SIZE}")
        key = request.idempotency_key
        with self._lock:
            if key in self._keys:
                return host_pb2.PublishResponse(event_id=self._keys[key], duplicate=True)
            published = Published(f"fake-{next(self._ids)}", name, payload)
            self.published.append(published)
            if key:
                self._keys[key] = published.id
        return host_pb2.PublishResponse(event_id=published.id)

    # --- the rules ---------------------------------------------------------

    def _namespace(self, namespace: str) -> str:
        return f"shared:{namespace}" if namespace else f"plugin:{self.plugin}"

    def _access(self, context: Any, namespace: str) -> tuple[str, str]:
        """Authenticates and checks the namespace and its grant: the store's
        namespace and its label for messages."""
        self._authenticate(context)
        if namespace:
            _name_rule(context, "namespace", namespace, 64)
            self._require(context, f"kv:shared:{namespace}")
            return self._namespace(namespace), namespace
        self._require(context, "kv")
        return self._namespace(""), self.plugin

    def _authenticate(self, context: Any) -> None:
        if self.token is None:
            return
        values = [v for k, v in context.invocation_metadata() if k == "authorization"]
        if values != [f"Bearer {self.token}"]:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing, repeated or wrong `authorization` metadata")

    def _require(self, context: Any, permission: str) -> None:
        if self.grants is None:
            return
        if permission.startswith("event:publish:"):
            name = permission.removeprefix("event:publish:")
            allowed = any(
                glob_match(g.removeprefix("event:publish:"), name) for g in self.grants if g.startswith("event:publish:")
            )
        else:
            allowed = permission in self.grants
        if not allowed:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"plugin {self.plugin!r} lacks permission {permission!r}")

    def _expiry(self, context: Any, request: Any) -> float | None:
        if not request.HasField("ttl"):
            return None
        seconds = request.ttl.ToNanoseconds() / 1e9
        if seconds < 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"ttl: negative ({request.ttl.seconds}s)")
        return None if seconds == 0 else self.now + seconds

    def _live(self, ns: str, key: str) -> _Stored | None:
        stored = self._store.get(ns, {}).get(key)
        if stored is None or (stored.expires is not None and stored.expires <= self.now):
            return None
        return stored

    def _write(self, context: Any, ns: str, label: str, key: str, stored: _Stored) -> None:
        if len(stored.value) > self.value_size:
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, f"kv value size: {len(stored.value)} bytes > limit {self.value_size}"
            )
        space = self._store.setdefault(ns, {})
        before = sum(len(k.encode()) + len(s.value) for k, s in space.items() if self._live(ns, k))
        old = self._live(ns, key)
        after = before - (0 if old is None else len(key.encode()) + len(old.value)) + len(key.encode()) + len(stored.value)
        # A write that shrinks or keeps the namespace's size is allowed.
        if after > self.namespace_total and after > before:
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"kv namespace {label!r} total: {after} bytes > limit {self.namespace_total}",
            )
        space[key] = stored


class _InProcess:
    """Calls the fake's methods directly, as a transport."""

    def __init__(self, host: FakeHost) -> None:
        self._host = host

    def call(self, method: str, request: Any) -> Any:
        token = self._host.token
        context = _LocalContext((("authorization", f"Bearer {token}"),) if token else ())
        try:
            return getattr(self._host, method)(request, context)
        except _Refused as e:
            raise HostError(method, e.code, e.details) from None


def _key(context: Any, key: str) -> None:
    if not key:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "key: empty")
    if len(key.encode()) > _MAX_KEY:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"key: longer than {_MAX_KEY} bytes")
    if "\0" in key:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "key: contains NUL")


def _name_rule(context: Any, field_name: str, name: str, most: int) -> None:
    if not (len(name) <= most and _NAME.fullmatch(name)):
        context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{field_name}: {name!r} is not 1 to {most} characters of [a-z0-9_.-] starting with a letter or digit",
        )


def _token_key(context: Any, token: str, ns: str, prefix: str) -> str | None:
    if not token:
        return None
    try:
        got_ns, got_prefix, last = bytes.fromhex(token).decode().split("\0", 2)
    except ValueError:
        got_ns = got_prefix = last = ""
    if (got_ns, got_prefix) != (ns, prefix) or not last:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "page_token: not a token of this listing")
    return last


def _timestamp(at: float | None) -> timestamp_pb2.Timestamp | None:
    if at is None:
        return None
    t = timestamp_pb2.Timestamp()
    t.FromNanoseconds(int(at * 1e9))
    return t


__all__ = ["FakeHost", "Published"]

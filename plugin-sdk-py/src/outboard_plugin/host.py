"""Host services (PROTOCOL.md §17): the handle a plugin calls back into the
host through, for the key-value store (:mod:`.kv`), secrets
(:mod:`.secrets`) and events (:mod:`.events`).

A plugin reaches them from an invocation (``invocation.kv()``), from
``configure`` (``config.kv()``) and from an event (``event.kv()``). They all
share one :class:`HostServices` handle per process, which connects to
``OUTBOARD_HOST_SOCKET`` on the first call and keeps the connection. When
the host offers no services (the variables are absent), every call raises
:class:`HostServicesNotOffered` naming the variable; a plugin that never
calls works as before.

The clients are synchronous, like ``urllib``: call them from plain ``def``
methods (the SDK runs those in worker threads), or from an ``async def``
through ``await asyncio.to_thread(kv.get, "key")``.

Every call carries ``authorization: Bearer <OUTBOARD_HOST_TOKEN>``; the token
is read at start, before the SDK removes the ``OUTBOARD_*`` variables from
the environment, and never appears in a ``repr`` or a log line.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import grpc

from .errors import (
    Failed,
    FailedPrecondition,
    PluginError,
    Unavailable,
)

if TYPE_CHECKING:
    from .events import Events
    from .kv import Kv
    from .secrets import Secrets

ENV_HOST_SOCKET = "OUTBOARD_HOST_SOCKET"
ENV_HOST_TOKEN = "OUTBOARD_HOST_TOKEN"

#: How long a call may take (seconds); PROTOCOL.md §17.4 asks for a deadline.
CALL_TIMEOUT = 10.0


class HostError(PluginError):
    """A host-service call failed: the host answered with an error status.

    :attr:`host_code` and :attr:`message` are the host's (the message names
    the field, the limit or the permission). Raised out of a plugin method,
    it answers the host's call as :attr:`code` says: a missing grant (or
    missing services) ``FAILED_PRECONDITION``, an unreachable host
    ``UNAVAILABLE``, anything else ``INTERNAL``.

    A missing key, an empty list or a lost compare-and-set are answers, not
    errors.
    """

    def __init__(self, call: str, host_code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"host service {call} failed: {host_code.name}: {message}")
        #: The call, e.g. ``KvSet``.
        self.call = call
        #: The gRPC status code the host answered with.
        self.host_code = host_code
        #: The host's message.
        self.host_message = message
        self.code = _plugin_code(host_code)


class HostServicesNotOffered(HostError):
    """The host that started this plugin offers no host services."""

    def __init__(self, missing: str) -> None:
        message = (
            f"host services are not available: {missing} is not set or not usable (the host that "
            "started this plugin offers none: it is older, or embedded without them)"
        )
        PluginError.__init__(self, message)
        self.call = ""
        self.host_code = grpc.StatusCode.FAILED_PRECONDITION
        self.host_message = message
        self.code = FailedPrecondition.code
        #: The variable that was absent or unusable.
        self.missing = missing


def _plugin_code(host_code: grpc.StatusCode) -> grpc.StatusCode:
    if host_code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.FAILED_PRECONDITION):
        return FailedPrecondition.code
    if host_code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return Unavailable.code
    return Failed.code


class Transport(Protocol):
    """How a call reaches the host: over the socket, or in process (a fake).
    ``method`` is the RPC's name (``KvGet``); raises :class:`HostError`."""

    def call(self, method: str, request: Any) -> Any: ...


@dataclass(frozen=True)
class HostEndpoint:
    """Where the host serves ``HostService`` and the token for it."""

    #: The Unix socket's absolute path (``OUTBOARD_HOST_SOCKET``).
    socket: str
    #: The Bearer token (``OUTBOARD_HOST_TOKEN``).
    token: str = field(repr=False)

    @staticmethod
    def from_lookup(lookup: Callable[[str], str | None]) -> HostEndpoint | str | None:
        """Reads the two variables: the endpoint, ``None`` when neither is
        set, or the name of the variable missing or unusable when only one
        is (or the path is relative)."""
        socket = lookup(ENV_HOST_SOCKET) or ""
        token = lookup(ENV_HOST_TOKEN) or ""
        if not socket and not token:
            return None
        if not token:
            return ENV_HOST_TOKEN
        if not socket.startswith("/"):
            return ENV_HOST_SOCKET
        return HostEndpoint(socket, token)


class SocketTransport:
    """Calls over ``OUTBOARD_HOST_SOCKET``: one channel, made on the first
    call, shared by every thread."""

    def __init__(self, endpoint: HostEndpoint) -> None:
        self._endpoint = endpoint
        self._lock = threading.Lock()
        self._stub: Any = None

    def __repr__(self) -> str:
        return f"SocketTransport(socket={self._endpoint.socket!r})"

    def _get_stub(self) -> Any:
        with self._lock:
            if self._stub is None:
                from ._proto import host_pb2_grpc

                # gRPC's default authority for a Unix socket is the path,
                # which an HTTP/2 server holding to RFC 3986 (the host's
                # hyper) refuses as malformed: name the host plainly.
                channel = grpc.insecure_channel(
                    f"unix://{self._endpoint.socket}", options=[("grpc.default_authority", "localhost")]
                )
                self._stub = host_pb2_grpc.HostServiceStub(channel)
            return self._stub

    def call(self, method: str, request: Any) -> Any:
        metadata = (("authorization", f"Bearer {self._endpoint.token}"),)
        try:
            return getattr(self._get_stub(), method)(request, timeout=CALL_TIMEOUT, metadata=metadata)
        except grpc.RpcError as e:
            code: grpc.StatusCode = e.code()
            details: str = e.details() or ""
            if code is grpc.StatusCode.UNAVAILABLE and "connect" in details:
                details = f"cannot reach the host at {ENV_HOST_SOCKET}={self._endpoint.socket}: {details}"
            raise HostError(method, code, details) from None


class _Absent:
    """No host services: every call says which variable was missing."""

    def __init__(self, missing: str) -> None:
        self.missing = missing

    def call(self, method: str, request: Any) -> Any:
        raise HostServicesNotOffered(self.missing)


class HostServices:
    """The handle on the host's services, shared by every call of the
    process (and thread-safe)."""

    def __init__(self, transport: Transport | None = None) -> None:
        #: Where calls go; by default nowhere (:class:`HostServicesNotOffered`).
        self.transport: Transport = transport if transport is not None else _Absent(ENV_HOST_SOCKET)

    @staticmethod
    def connect(endpoint: HostEndpoint) -> HostServices:
        """The services at ``endpoint``, connecting on the first call."""
        return HostServices(SocketTransport(endpoint))

    @staticmethod
    def absent(missing: str = ENV_HOST_SOCKET) -> HostServices:
        """No services: every call raises :class:`HostServicesNotOffered`
        naming ``missing``."""
        return HostServices(_Absent(missing))

    def __repr__(self) -> str:
        return f"HostServices({'offered' if self.is_offered else 'absent'})"

    @property
    def is_offered(self) -> bool:
        """``True`` if the host offers services (the variables were set)."""
        return not isinstance(self.transport, _Absent)

    def kv(self) -> Kv:
        """The key-value store, in the plugin's own namespace (permission ``kv``)."""
        from .kv import Kv

        return Kv(self.transport)

    def secrets(self) -> Secrets:
        """The secrets the operator granted."""
        from .secrets import Secrets

        return Secrets(self.transport)

    def events(self) -> Events:
        """Publishing events."""
        from .events import Events

        return Events(self.transport)


class HasHost:
    """The ``kv()``, ``secrets()`` and ``events()`` shortcuts of a
    :class:`~outboard_plugin.Config`, an :class:`~outboard_plugin.Invocation`
    and an :class:`~outboard_plugin.events.Event`, all through ``host``."""

    host: HostServices

    def kv(self) -> Kv:
        """The key-value store, in the plugin's own namespace."""
        return self.host.kv()

    def secrets(self) -> Secrets:
        """The secrets the operator granted."""
        return self.host.secrets()

    def events(self) -> Events:
        """Publishing events."""
        return self.host.events()

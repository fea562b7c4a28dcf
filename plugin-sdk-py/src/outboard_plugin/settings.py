"""What the host tells a plugin through its environment (PROTOCOL.md §2.1,
§4, §12.4, §18), read and checked before anything is bound or printed."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .errors import NotStartedByHost, SettingsError
from .host import ENV_HOST_SOCKET, HostEndpoint, HostServices

ENV_MAGIC_COOKIE = "OUTBOARD_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "0b7f4a8e-outboard-plugin"
ENV_PROTOCOL_VERSIONS = "OUTBOARD_PROTOCOL_VERSIONS"
ENV_SOCKET = "OUTBOARD_SOCKET"
ENV_TOKEN = "OUTBOARD_TOKEN"
ENV_PLUGIN_NAME = "OUTBOARD_PLUGIN_NAME"
ENV_FASTPATH_SOCKET = "OUTBOARD_FASTPATH_SOCKET"

#: The protocol versions this SDK speaks.
SUPPORTED_PROTOCOL_VERSIONS: tuple[int, ...] = (1,)
#: The newest of them.
PROTOCOL_VERSION = max(SUPPORTED_PROTOCOL_VERSIONS)

_MAX_VERSION = 4_294_967_295


@dataclass(frozen=True)
class Settings:
    """How :func:`~outboard_plugin.serve_with` runs one plugin launch."""

    #: The Unix socket path to bind (``OUTBOARD_SOCKET``).
    socket_path: str
    #: The token every ``PluginService`` call must carry (``OUTBOARD_TOKEN``).
    token: str = field(repr=False)
    #: The protocol version agreed with the host.
    protocol_version: int = PROTOCOL_VERSION
    #: The name the host knows this instance by (``OUTBOARD_PLUGIN_NAME``), if it said.
    instance_name: str | None = None
    #: ``True`` to stop gracefully on SIGTERM and SIGINT.
    handle_signals: bool = True
    #: Where the host serves host services (``OUTBOARD_HOST_SOCKET``,
    #: ``OUTBOARD_HOST_TOKEN``), if it offers them.
    host: HostEndpoint | None = None
    #: Without :attr:`host`: the variable that was missing or unusable, for
    #: the error every host-service call then raises.
    host_missing: str = ENV_HOST_SOCKET
    #: Where the host offers the invoke fast path (``OUTBOARD_FASTPATH_SOCKET``,
    #: PROTOCOL.md §18), if it does.
    fastpath_socket: str | None = None
    #: ``False`` to leave the fast path alone even when the host offers it:
    #: the socket is not bound, the manifest does not list the feature, and
    #: every ``Invoke`` comes over gRPC.
    fastpath: bool = True

    @property
    def serves_fastpath(self) -> bool:
        """``True`` if this launch binds :attr:`fastpath_socket` and lists
        the fast path's feature: the host offers it and the plugin did not
        turn it off."""
        return self.fastpath and self.fastpath_socket is not None

    def host_services(self) -> HostServices:
        """The handle every configure, invocation and event of this launch
        gets: connected to :attr:`host`, or raising on every call."""
        if self.host is None:
            return HostServices.absent(self.host_missing)
        return HostServices.connect(self.host)

    @staticmethod
    def from_env(environ: Mapping[str, str] | None = None) -> Settings:
        """Reads the ``OUTBOARD_*`` variables of this process (or of ``environ``)."""
        env = os.environ if environ is None else environ
        return Settings.from_lookup(env.get)

    @staticmethod
    def from_lookup(lookup: Callable[[str], str | None]) -> Settings:
        """Reads the ``OUTBOARD_*`` variables through ``lookup``, checked in
        the order PROTOCOL.md §12.4 gives."""
        # The cookie comes first: without it nothing else is worth reporting.
        if lookup(ENV_MAGIC_COOKIE) != MAGIC_COOKIE_VALUE:
            raise NotStartedByHost()
        raw = lookup(ENV_PROTOCOL_VERSIONS)
        if raw is None:
            raise SettingsError(f"{ENV_PROTOCOL_VERSIONS} is not set, but an Outboard host always sets it")
        host = parse_versions(raw)
        version = negotiate(host, SUPPORTED_PROTOCOL_VERSIONS)
        if version is None:
            raise SettingsError(
                "no common Outboard protocol version: the host speaks "
                f"{format_versions(host)}; this plugin speaks {format_versions(SUPPORTED_PROTOCOL_VERSIONS)}"
            )
        socket_path = lookup(ENV_SOCKET) or ""
        if not socket_path:
            raise SettingsError(f"{ENV_SOCKET} is not set, but an Outboard host always sets it")
        if not socket_path.startswith("/"):
            raise SettingsError(f"{ENV_SOCKET} is {socket_path!r}: the socket path must be absolute")
        fastpath_socket = lookup(ENV_FASTPATH_SOCKET) or None
        if fastpath_socket is not None and not fastpath_socket.startswith("/"):
            raise SettingsError(f"{ENV_FASTPATH_SOCKET} is {fastpath_socket!r}: the socket path must be absolute")
        token = lookup(ENV_TOKEN) or ""
        if not token:
            raise SettingsError(f"{ENV_TOKEN} is not set, but an Outboard host always sets it")
        # Host services are optional: a host that sets only one of the two
        # variables offers none, and only the calls say so.
        endpoint = HostEndpoint.from_lookup(lookup)
        return Settings(
            socket_path=socket_path,
            token=token,
            protocol_version=version,
            instance_name=lookup(ENV_PLUGIN_NAME) or None,
            host=endpoint if isinstance(endpoint, HostEndpoint) else None,
            host_missing=endpoint if isinstance(endpoint, str) else ENV_HOST_SOCKET,
            fastpath_socket=fastpath_socket,
        )


def remove_from_environment() -> None:
    """Removes every ``OUTBOARD_*`` variable from this process's environment
    once :meth:`Settings.from_env` has read them, so that no process the
    plugin starts inherits the token (PROTOCOL.md §2.1); later variables of
    that prefix (host-service credentials) go too."""
    for name in [n for n in os.environ if n.startswith("OUTBOARD_")]:
        del os.environ[name]


def parse_versions(raw: str) -> list[int]:
    """Parses ``OUTBOARD_PROTOCOL_VERSIONS`` leniently: entries split on
    ``,``, spaces around them and empty entries ignored; anything else that
    is not a positive decimal integer is an error quoting the value."""
    versions = []
    for entry in raw.split(","):
        entry = entry.strip()
        if not entry:
            continue
        if not entry.isascii() or not entry.isdigit() or not 0 < int(entry) <= _MAX_VERSION:
            raise SettingsError(f"{ENV_PROTOCOL_VERSIONS} is {raw!r}: {entry!r} is not a positive integer")
        versions.append(int(entry))
    return versions


def negotiate(host: list[int] | tuple[int, ...], plugin: tuple[int, ...]) -> int | None:
    """The newest version both sides speak, if any."""
    common = [v for v in host if v in plugin]
    return max(common) if common else None


def format_versions(versions: list[int] | tuple[int, ...]) -> str:
    """A version list the way ``OUTBOARD_PROTOCOL_VERSIONS`` carries it."""
    return ",".join(str(v) for v in versions)

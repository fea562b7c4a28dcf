"""What ``Configure`` hands a plugin (PROTOCOL.md §8.3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import PluginError
from .health import Health
from .host import HasHost, HostServices


@dataclass
class Config(HasHost):
    """The plugin's configuration and what the host granted it."""

    #: The config object from the host's configuration, already checked
    #: against the manifest's schema by the host (check it again anyway:
    #: other tools drive plugins too).
    values: dict[str, Any] = field(default_factory=dict)
    #: The permissions the host granted, a subset of those asked for.
    granted_permissions: list[str] = field(default_factory=list)
    #: The name the host knows this instance by (may differ from the
    #: manifest name when one plugin runs twice).
    instance_name: str = ""
    #: The protocol version in use.
    protocol_version: int = 1
    #: The plugin's health service: keep it to report ``NOT_SERVING`` later.
    health: Health = field(default_factory=Health, compare=False, repr=False)
    #: The host's services (PROTOCOL.md §17): ``config.kv()``, ... Keep it
    #: to call them outside an invocation.
    host: HostServices = field(default_factory=HostServices, compare=False, repr=False)

    def get(self, key: str, default: Any = None) -> Any:
        """The value at top-level key ``key``, or ``default``."""
        return self.values.get(key, default)

    def is_granted(self, permission: str) -> bool:
        """``True`` if the host granted ``permission``."""
        return permission in self.granted_permissions

    def require(self, permission: str) -> None:
        """Raises ``FAILED_PRECONDITION`` naming ``permission`` unless the
        host granted it (PROTOCOL.md §8.3)."""
        if not self.is_granted(permission):
            raise PluginError.failed_precondition(
                f"the permission {permission!r} was not granted; the plugin cannot work without it "
                f"(add {permission!r} to the plugin's `grant` list in the host's configuration)"
            )

    def check_keys(self, allowed: set[str] | frozenset[str]) -> None:
        """Raises ``INVALID_ARGUMENT`` naming the first key of the config
        that is not in ``allowed``."""
        for key in sorted(self.values):
            if key not in allowed:
                raise PluginError.invalid_config(
                    f"unknown key {key!r}; expected one of: {', '.join(sorted(allowed)) or '(none)'}"
                )

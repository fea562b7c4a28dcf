"""Reading the secrets the operator granted (PROTOCOL.md §17.4), and
:class:`Secret`, a value that never shows in a ``repr``."""

from __future__ import annotations

from ._proto import host_pb2
from .host import Transport


class Secret:
    """A secret's value. Its ``repr`` and ``str`` are ``Secret(<redacted>)``,
    so that it cannot reach a log line by accident; read it with
    :meth:`expose`."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes | str) -> None:
        self._value = value.encode() if isinstance(value, str) else bytes(value)

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def expose(self) -> bytes:
        """The value, byte for byte. Never log it."""
        return self._value

    def expose_str(self) -> str:
        """The value as UTF-8 text (raises ``UnicodeDecodeError`` if it is not)."""
        return self._value.decode()


class Secrets:
    """The secrets granted to this plugin (``secret:NAME``). Read a secret
    when it is needed rather than keeping it: the host may rotate it."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def get(self, name: str) -> Secret:
        """The secret ``name`` as configured in ``[secrets.NAME]``. Not
        granted: ``PERMISSION_DENIED`` (also when no such secret exists);
        granted but not configured: ``NOT_FOUND``."""
        r = self._transport.call("GetSecret", host_pb2.GetSecretRequest(name=name))
        return Secret(bytes(r.value))

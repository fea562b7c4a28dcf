"""The errors a plugin raises (:class:`PluginError`) and the errors that stop
:func:`~outboard_plugin.serve` (:class:`ServeError`, :class:`SettingsError`).

Each :class:`PluginError` kind maps to one gRPC status code, and its message
travels to the host, which shows it with the plugin's name.
"""

from __future__ import annotations

import grpc


class PluginError(Exception):
    """Why a plugin refused or failed a call.

    Raise one of the subclasses (or use the constructors below) from
    ``configure`` or ``invoke``; the SDK answers the call with
    :attr:`code` and :attr:`status_message`. Any other exception becomes
    ``INTERNAL`` naming its type.
    """

    #: The gRPC status code the host receives.
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    #: Put in front of the message in the status, so the operator sees the kind.
    prefix: str = ""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        #: The message as the plugin gave it, without the kind prefix.
        self.message = message

    @property
    def status_message(self) -> str:
        """The status message the host shows: the prefix and the message."""
        return f"{self.prefix}{self.message}"

    def __str__(self) -> str:
        return self.status_message

    @staticmethod
    def invalid_config(message: str) -> InvalidConfig:
        """A config the plugin cannot use; say which field and why."""
        return InvalidConfig(message)

    @staticmethod
    def invalid_context(message: str) -> InvalidContext:
        """A phase context the plugin cannot work with; say which path and why."""
        return InvalidContext(message)

    @staticmethod
    def failed(message: str) -> Failed:
        """The plugin failed while doing its job."""
        return Failed(message)

    @staticmethod
    def internal(message: str) -> Failed:
        """A bug or broken invariant inside the plugin; the same status as :meth:`failed`."""
        return Failed(message)

    @staticmethod
    def unavailable(message: str) -> Unavailable:
        """Something the plugin relies on is down; the call may be retried."""
        return Unavailable(message)

    @staticmethod
    def failed_precondition(message: str) -> FailedPrecondition:
        """The plugin cannot work as set up, e.g. a permission was not granted."""
        return FailedPrecondition(message)


class InvalidConfig(PluginError):
    """The configuration cannot be used (``INVALID_ARGUMENT``)."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    prefix = "invalid config: "


class InvalidContext(PluginError):
    """The phase context lacks something the plugin needs or holds something
    it cannot read (``INVALID_ARGUMENT``)."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    prefix = "invalid context: "


class Failed(PluginError):
    """The plugin tried and failed (``INTERNAL``)."""

    code = grpc.StatusCode.INTERNAL


class Unavailable(PluginError):
    """Something the plugin relies on is down; a retry may work (``UNAVAILABLE``)."""

    code = grpc.StatusCode.UNAVAILABLE
    prefix = "unavailable: "


class FailedPrecondition(PluginError):
    """The plugin cannot work as it was set up, typically a permission it
    needs was not granted (``FAILED_PRECONDITION``, PROTOCOL.md §8.3)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Unimplemented(PluginError):
    """The plugin has no handler for the call, e.g. an event it subscribed to
    without handling it (``UNIMPLEMENTED``, so that the host retries and
    then dead-letters the delivery instead of counting it done)."""

    code = grpc.StatusCode.UNIMPLEMENTED


class SettingsError(Exception):
    """Why the process environment is not one an Outboard host set up."""


class NotStartedByHost(SettingsError):
    """``OUTBOARD_MAGIC_COOKIE`` is missing or wrong: someone ran the plugin by hand."""

    def __init__(self) -> None:
        super().__init__("this program is an Outboard plugin and was not started by an Outboard host")


class ServeError(Exception):
    """Why :func:`~outboard_plugin.serve` could not start or stopped with an
    error. The message names the plugin."""

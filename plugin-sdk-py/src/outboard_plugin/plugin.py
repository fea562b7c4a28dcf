"""The class a plugin subclasses."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from .config import Config
from .invocation import Invocation
from .manifest import Manifest
from .errors import Unimplemented
from .reply import Reply

if TYPE_CHECKING:
    from .events import Event


class Plugin:
    """An Outboard plugin. Subclass it and override :meth:`manifest` and
    :meth:`invoke`; :meth:`configure` and :meth:`shutdown` are optional.

    Each method may be a plain ``def`` or an ``async def``. A plain method
    runs in a worker thread, so blocking calls (files, ``urllib``) do not
    stall the server; an ``async def`` runs on the server's event loop and
    must not block. ``invoke`` may be called concurrently (for the same or
    different phases): keep shared state behind a lock.

    Errors: raise :class:`~outboard_plugin.PluginError` (or one of its
    subclasses) to answer with its status code; any other exception is
    answered ``INTERNAL`` naming its type, and its traceback is logged.
    """

    def manifest(self) -> Manifest:
        """What the plugin is and what it subscribes to. Called once at start."""
        raise NotImplementedError(f"{type(self).__name__} must override Plugin.manifest()")

    def configure(self, config: Config) -> None | Awaitable[None]:
        """Receives the configuration; raise
        :meth:`PluginError.invalid_config <outboard_plugin.PluginError.invalid_config>`
        to refuse it. The default accepts anything."""
        return None

    def invoke(self, invocation: Invocation) -> Reply | Awaitable[Reply]:
        """Runs one phase and says how the context should change."""
        raise NotImplementedError(f"{type(self).__name__} must override Plugin.invoke()")

    def on_event(self, event: Event) -> None | Awaitable[None]:
        """Handles one event the plugin subscribed to with
        :meth:`Manifest.subscribe_event <outboard_plugin.Manifest.subscribe_event>`
        (PROTOCOL.md §17.6). Returning counts as delivered; raising is
        retried by the host with backoff and, after its last attempt,
        dead-lettered. Delivery is at least once: deduplicate on
        ``event.id`` when it matters.

        The default raises ``UNIMPLEMENTED``, so that an event nobody
        handles is retried and dead-lettered, never silently counted as
        delivered."""
        raise Unimplemented(
            f"the plugin subscribes to event {event.name!r} but does not implement Plugin.on_event"
        )

    def shutdown(self) -> None | Awaitable[None]:
        """Releases resources before the process exits, after in-flight calls
        have finished or been cancelled at the end of the grace. Keep it
        short. The default does nothing."""
        return None

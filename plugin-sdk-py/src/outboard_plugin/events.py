"""Events (PROTOCOL.md §17.4, §17.6): publishing them (:class:`Events`),
receiving them (:class:`Event`, handled by ``Plugin.on_event``), and the
routing of ``event:<name>`` invocations to the handler."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ._proto import host_pb2
from .errors import InvalidContext, PluginError, Unimplemented
from .host import HasHost, HostServices, Transport
from .invocation import Invocation
from .jsonvalue import python_to_value
from .reply import Reply

if TYPE_CHECKING:
    from .plugin import Plugin

#: The phase prefix of an event delivery: ``event:job.finished``.
PHASE_PREFIX = "event:"


class Events:
    """Publishing events (``event:publish:GLOB`` granted for the name). When
    :meth:`publish` returns, the event is stored durably; the host delivers
    it to subscribers later, at least once."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def publish(self, name: str, payload: Any = None, idempotency_key: str = "") -> str:
        """Publishes the event ``name`` (1 to 128 characters of
        ``[a-z0-9_.-]``, not starting with the host's own ``plugin.``,
        ``job.``, ``reload.``, ``host.``) with a JSON ``payload``; returns
        its id. With an ``idempotency_key`` (at most 128 bytes) the publish
        is safe to retry: a second one by this plugin with the same key,
        within the host's retention, stores nothing and returns the first
        event's id."""
        request = host_pb2.PublishRequest(
            name=name, payload=python_to_value(payload), idempotency_key=idempotency_key
        )
        return str(self._transport.call("Publish", request).event_id)


@dataclass
class Event(HasHost):
    """One event as the host delivers it. Delivery is at least once: the
    same :attr:`id` may arrive again; deduplicate on it when that matters."""

    #: The event's name, e.g. ``job.finished``.
    name: str
    #: The payload, any JSON value.
    payload: Any = None
    #: Unique per host state directory; the same on every retry.
    id: str = "event-1"
    #: Who published it: ``host``, or ``plugin:<instance name>``.
    source: str = "host"
    #: When it was published (UTC).
    time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    #: 1 for the first delivery, then 2, ... across retries.
    attempt: int = 1
    #: The host's services, for the handler's calls (``event.kv()``).
    host: HostServices = field(default_factory=HostServices, compare=False, repr=False)

    @property
    def from_host(self) -> bool:
        """``True`` if the host published it (not a plugin)."""
        return self.source == "host"

    def get(self, key: str, default: Any = None) -> Any:
        """``payload[key]`` when the payload is an object, else ``default``."""
        return self.payload.get(key, default) if isinstance(self.payload, dict) else default

    def to_context(self) -> dict[str, Any]:
        """The invocation context the host sends for this event."""
        time = self.time.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        event = {"id": self.id, "name": self.name, "source": self.source, "time": time, "payload": self.payload}
        return {"event": event}

    @staticmethod
    def from_invocation(invocation: Invocation) -> Event:
        """The event an ``event:<name>`` invocation delivers; a context
        without the ``event`` object is ``INVALID_ARGUMENT``."""
        name = invocation.phase.removeprefix(PHASE_PREFIX)

        def text(key: str) -> str:
            value = invocation.get(f"/event/{key}")
            if not isinstance(value, str):
                raise InvalidContext(f"/event/{key} is missing or not a string in the delivery of event {name!r}")
            return value

        raw_time = text("time")
        try:
            time = datetime.fromisoformat(raw_time)
        except ValueError:
            raise InvalidContext(f"/event/time {raw_time!r} is not an RFC 3339 time") from None
        return Event(
            name=name,
            payload=invocation.get("/event/payload"),
            id=text("id"),
            source=text("source"),
            time=time,
            attempt=invocation.attempt,
            host=invocation.host,
        )


def glob_match(pattern: str, name: str) -> bool:
    """``True`` if ``name`` matches ``pattern``, where ``*`` matches any run
    of characters, dots included, and nothing else is special."""
    parts = pattern.split("*")
    if len(parts) == 1:
        return name == pattern
    first, *middle, last = parts
    if not name.startswith(first):
        return False
    rest = name[len(first) :]
    for part in middle:
        at = rest.find(part)
        if at < 0:
            return False
        rest = rest[at + len(part) :]
    return len(rest) >= len(last) and rest.endswith(last)


def handler_for(plugin: Plugin, patterns: Sequence[str], phase: str) -> Callable[[Invocation], Any]:
    """What answers an invocation of ``phase``: ``plugin.invoke``, or for an
    ``event:<name>`` phase ``plugin.on_event`` wrapped to read the event and
    answer ``Reply.ok()``, when the manifest subscribes to the event (else
    ``UNIMPLEMENTED``). Keeps ``on_event``'s kind: an ``async def`` stays
    one, so that the server runs it on its loop."""
    if not phase.startswith(PHASE_PREFIX):
        return plugin.invoke
    on_event = plugin.on_event

    def read(invocation: Invocation) -> Event:
        event = Event.from_invocation(invocation)
        if not any(glob_match(p, event.name) for p in patterns):
            raise Unimplemented(f"the plugin does not subscribe to event {event.name!r} (its patterns: {list(patterns)})")
        return event

    if inspect.iscoroutinefunction(on_event):

        async def handle_async(invocation: Invocation) -> Reply:
            await on_event(read(invocation))
            return Reply.ok()

        return handle_async

    def handle(invocation: Invocation) -> Reply | Awaitable[Reply]:
        result = on_event(read(invocation))
        if inspect.isawaitable(result):
            return _then_ok(result)
        return Reply.ok()

    return handle


async def _then_ok(result: Awaitable[None]) -> Reply:
    await result
    return Reply.ok()


__all__ = ["Event", "Events", "PHASE_PREFIX", "PluginError", "glob_match", "handler_for"]

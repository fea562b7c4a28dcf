"""``event-notifier``: posts the host's ``job.finished`` and
``plugin.failed`` events (PROTOCOL.md §17.6) as chat messages, in
chat-notifier's style and to the same kind of destination: a webhook on
this machine or a file, one JSON line per message::

    {"text": ":x: job 6f1c2d3e failed: `make test` exited with 2 after 1.3 s"}
    {"text": ":rotating_light: plugin `audit-log` failed: crash loop (5 starts in 60 s)"}

It subscribes to no phase, only to the two events (so its manifest asks for
``event:subscribe:job.finished`` and ``event:subscribe:plugin.failed``,
which the operator grants), and needs no other host service. Delivery is at
least once: an event delivered again (a retry after a lost answer) is
recognised by its id and not posted twice while the plugin runs. A failed
post raises, so that the host retries the delivery with backoff.

Config: as chat-notifier's (exactly one of ``url`` and ``file``;
``notify = "failure"`` leaves out jobs that succeeded, never a failed
plugin)::

    [plugin.config]
    file = "examples/out/events-chat.jsonl"   # or: url = "http://127.0.0.1:8065/hooks/outboard"
"""

from __future__ import annotations

import shlex
import threading
from collections import OrderedDict
from typing import Any

from outboard_plugin import Config, Event, Invocation, Manifest, Plugin, PluginError, Reply, run

from .chat_notifier import CONFIG_SCHEMA, Settings, deliver

NAME = "event-notifier"
VERSION = "0.1.0"
EVENTS = ("job.finished", "plugin.failed")
#: How many event ids are remembered to drop repeated deliveries.
REMEMBERED = 1024
#: The longest reason quoted from a failed plugin (it is the plugin's text).
MAX_REASON = 300


def job_text(payload: dict[str, Any]) -> str:
    """The message for ``job.finished``: ``{"job", "command", "status",
    "exit_code", "duration_ms"}``, where ``status`` is ``succeeded`` or what
    failed the job (``exit_code``, ``vetoed``, ``plugin_failed``, ...);
    missing fields are left out."""
    job = str(payload.get("job", "?"))[:8]
    status = payload.get("status")
    if status == "succeeded":
        text = f":white_check_mark: job {job} succeeded"
    else:
        text = f":x: job {job} failed"
        # "exited with N" below says it for a command that failed.
        if isinstance(status, str) and status not in ("failed", "exit_code"):
            text += f" ({status.replace('_', ' ')})"
    command = payload.get("command")
    if isinstance(command, list) and all(isinstance(a, str) for a in command):
        text += f": `{shlex.join(command)}`"
    exit_code = payload.get("exit_code")
    if isinstance(exit_code, int) and not isinstance(exit_code, bool):
        text += f" exited with {exit_code}"
    duration = payload.get("duration_ms")
    if isinstance(duration, (int, float)) and not isinstance(duration, bool):
        text += f" after {duration / 1000:.1f} s"
    return text


def plugin_text(payload: dict[str, Any]) -> str:
    """The message for ``plugin.failed``: ``{"plugin", "reason"}``."""
    reason = " ".join(str(payload.get("reason", "no reason given")).split())
    if len(reason) > MAX_REASON:
        reason = reason[: MAX_REASON - 1] + "…"
    return f":rotating_light: plugin `{payload.get('plugin', '?')}` failed: {reason}"


class EventNotifier(Plugin):
    """The plugin. ``on_event`` is a plain ``def``: the SDK runs it in a
    worker thread, so the blocking post does not stall the server."""

    def __init__(self) -> None:
        self.settings: Settings | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def manifest(self) -> Manifest:
        manifest = Manifest(NAME, VERSION).describe("Posts job.finished and plugin.failed events as chat messages")
        for name in EVENTS:
            manifest.subscribe_event(name)
        return manifest.config_schema(CONFIG_SCHEMA)

    def configure(self, config: Config) -> None:
        self.settings = Settings.parse(config.values, NAME)

    def invoke(self, invocation: Invocation) -> Reply:
        # No phase is subscribed to: the host never sends one.
        return Reply.ok()

    def on_event(self, event: Event) -> None:
        settings = self.settings
        if settings is None:
            raise PluginError.failed(f"{NAME} was not configured")
        payload = event.payload if isinstance(event.payload, dict) else {}
        if event.name == "job.finished":
            if settings.notify == "failure" and payload.get("status") == "succeeded":
                return
            text = job_text(payload)
        elif event.name == "plugin.failed":
            text = plugin_text(payload)
        else:
            raise PluginError.invalid_context(f"{NAME} does not handle event {event.name!r}")
        with self._lock:
            if event.id in self._seen:
                return
        deliver(settings, text, None)
        # Remembered only once posted: a failed post is retried in full.
        with self._lock:
            self._seen[event.id] = None
            while len(self._seen) > REMEMBERED:
                self._seen.popitem(last=False)


def main() -> int:
    """The ``event-notifier`` command."""
    return run(EventNotifier())


if __name__ == "__main__":
    raise SystemExit(main())

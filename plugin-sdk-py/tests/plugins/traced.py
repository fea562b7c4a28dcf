"""A plugin for the SDK's trace tests, started as a real process.

Its ``invoke`` (a plain ``def``, run in a worker thread; ``async def`` when
started with the argument ``async``) starts a span of its own with the
OpenTelemetry API and writes one log line inside it;
``metadata.traced.fail`` makes it fail with that message.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from opentelemetry import trace

from outboard_plugin import Invocation, Manifest, Plugin, PluginError, Reply, run

log = logging.getLogger("traced")


def work(invocation: Invocation) -> Reply:
    with trace.get_tracer("traced").start_as_current_span("author.work"):
        log.info("author log line")
    traced: Any = invocation.get("/metadata/traced", {})
    if isinstance(traced, dict) and "fail" in traced:
        raise PluginError.invalid_context(str(traced["fail"]))
    return Reply.ok()


class Traced(Plugin):
    def manifest(self) -> Manifest:
        return Manifest("traced", "0.1.0").subscribe("pre_container", 0)

    def invoke(self, invocation: Invocation) -> Reply:
        return work(invocation)


class TracedAsync(Traced):
    async def invoke(self, invocation: Invocation) -> Reply:  # type: ignore[override]
        return work(invocation)


if __name__ == "__main__":
    raise SystemExit(run(TracedAsync() if sys.argv[1:] == ["async"] else Traced()))

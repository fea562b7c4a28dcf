"""Continuing the host's trace (PROTOCOL.md, "Trace context").

When the ``OTEL_*`` environment asks for span export (an OTLP endpoint in
``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
``OTEL_TRACES_EXPORTER`` not ``none``), :func:`init` sets up the
OpenTelemetry SDK with an OTLP/gRPC batch exporter (service name from
``OTEL_SERVICE_NAME``, which the host sets to the plugin's name) and makes
it the global tracer provider. Every ``Invoke`` then runs the plugin's
handler in a span ``outboard.plugin.invoke`` whose parent is the host's
``traceparent``; spans the plugin starts with the OpenTelemetry API are its
children, and :mod:`.log` lines written meanwhile carry ``trace_id`` and
``span_id``.

The OpenTelemetry packages are the ``otel`` extra (``pip install
'outboard-plugin[otel]'``) and are imported only when the environment asks
for export; without them the plugin runs untraced after one warning line.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import os
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from . import log as _log

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from .invocation import Invocation

log = logging.getLogger("outboard_plugin")

#: The name of the span every ``Invoke`` runs in.
SPAN_NAME = "outboard.plugin.invoke"
#: How long the spans still queued get to leave when serving ends (seconds).
#: The host sends SIGKILL 2 s after SIGTERM, and most of that may go to
#: draining calls.
FLUSH_BOUND = 0.4


class _Exporting:
    """The tracer provider while spans are exported."""

    __slots__ = ("provider", "tracer", "propagator")

    def __init__(self, provider: TracerProvider, tracer: Tracer, propagator: TraceContextTextMapPropagator) -> None:
        self.provider = provider
        self.tracer = tracer
        self.propagator = propagator


#: Set by :func:`init` when spans are exported, cleared by :func:`shutdown`.
_exporting: _Exporting | None = None


def wanted(env: Mapping[str, str]) -> bool:
    """Whether ``env`` asks for span export: an OTLP endpoint, and neither
    ``OTEL_TRACES_EXPORTER=none`` nor ``OTEL_SDK_DISABLED=true``."""
    endpoint = any(env.get(name, "").strip() for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"))
    exporters = env.get("OTEL_TRACES_EXPORTER")
    exporter_none = exporters is not None and all(e.strip().lower() == "none" for e in exporters.split(","))
    disabled = env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    return endpoint and not exporter_none and not disabled


def init() -> None:
    """Starts span export if the environment asks for it and it is not
    running yet. Missing packages: one warning, and the plugin runs
    untraced."""
    global _exporting
    if _exporting is not None or not wanted(os.environ):
        return
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError as e:
        log.warning(
            "trace export is off: the OpenTelemetry packages are missing (install outboard-plugin[otel])",
            extra={"error": str(e)},
        )
        return
    # The resource (service.name) comes from OTEL_SERVICE_NAME and
    # OTEL_RESOURCE_ATTRIBUTES. Not shut down at exit by the SDK: its
    # unbounded flush would hold up the exit; shutdown() bounds it.
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    # Spans the plugin starts with the OpenTelemetry API go to the same place.
    trace.set_tracer_provider(provider)
    _exporting = _Exporting(provider, provider.get_tracer("outboard_plugin"), TraceContextTextMapPropagator())
    _log.current_ids = current_ids


def invoke_span(plugin: str, invocation: Invocation) -> AbstractContextManager[Any] | None:
    """The span ``outboard.plugin.invoke`` for ``invocation``, made current
    while the returned context manager is entered: a child of the W3C
    ``traceparent`` (with ``tracestate``) in its trace context, or a new
    root if there is none or it is malformed. ``None`` when spans are not
    exported."""
    exporting = _exporting
    if exporting is None:
        return None
    from opentelemetry.trace import SpanKind

    # An empty context when the traceparent is absent or malformed: a root.
    parent = exporting.propagator.extract(invocation.trace_context)
    return exporting.tracer.start_as_current_span(
        SPAN_NAME,
        context=parent,
        kind=SpanKind.SERVER,
        attributes={
            "outboard.plugin": plugin,
            "outboard.phase": invocation.phase,
            "outboard.invocation_id": invocation.invocation_id,
            "outboard.attempt": invocation.attempt,
        },
        # The SDK answers the host with a status and records it below; an
        # exception here is gRPC's abort, not the plugin's failure.
        record_exception=False,
        set_status_on_exception=False,
    )


def failed(message: str) -> None:
    """Marks the current ``Invoke`` span as failed with ``message`` (the
    status the host is answered with). Nothing when spans are not
    exported."""
    if _exporting is None:
        return
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    trace.get_current_span().set_status(Status(StatusCode.ERROR, message))


def in_context(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method``, to be run in a worker thread within the current context
    (the ``Invoke`` span) when spans are exported; as it is otherwise."""
    if _exporting is None:
        return method
    return functools.partial(contextvars.copy_context().run, method)


def current_ids() -> tuple[str, str] | None:
    """The current span's trace and span ids (lower-case hex), if there is a
    valid current span."""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def shutdown() -> None:
    """Sends the spans still queued, waiting at most :data:`FLUSH_BOUND`,
    and stops exporting. Called when serving ends (``Shutdown`` call or
    signal); nothing when spans are not exported."""
    global _exporting
    exporting, _exporting = _exporting, None
    if exporting is None:
        return
    _log.current_ids = None
    # The SDK's shutdown waits for the export without a bound; it runs in a
    # daemon thread so that an unreachable collector cannot hold up the exit.
    flushing = threading.Thread(target=exporting.provider.shutdown, name="outboard-otlp-flush", daemon=True)
    flushing.start()
    flushing.join(FLUSH_BOUND)
    if flushing.is_alive():
        log.warning("spans not all exported before stopping", extra={"waited_ms": round(FLUSH_BOUND * 1000)})

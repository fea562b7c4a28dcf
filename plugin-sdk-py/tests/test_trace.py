"""The SDK continues the host's trace with no code from the plugin: a real
plugin process sends its spans over OTLP/gRPC to a real receiver in this
test (the collector's gRPC service from opentelemetry-proto)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from outboard_plugin import trace
from outboard_plugin._proto import plugin_pb2
from outboard_plugin.jsonvalue import dict_to_struct
from outboard_plugin.testing import RunningPlugin

from .fastclient import ERROR, FastClient

TRACED = Path(__file__).parent / "plugins" / "traced.py"
# The host's `outboard.invoke` span, as the host would send it.
HOST_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
HOST_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{HOST_TRACE}-{HOST_SPAN}-01"
WAIT = 20.0


@dataclass
class Span:
    """One received span, flattened."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    service: str
    attributes: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    """Keeps every span it is sent; :meth:`wait_for` wakes on each export."""

    def __init__(self) -> None:
        self._spans: list[Span] = []
        self._arrived = threading.Condition()

    def Export(self, request: Any, context: Any) -> Any:
        spans = []
        for resource_spans in request.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    error = s.status.message if s.status.code == trace_pb2.Status.STATUS_CODE_ERROR else None
                    spans.append(
                        Span(
                            name=s.name,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_span_id=s.parent_span_id.hex() or None,
                            service=str(resource.get("service.name", "")),
                            attributes={kv.key: _value(kv.value) for kv in s.attributes},
                            error=error,
                        )
                    )
        with self._arrived:
            self._spans.extend(spans)
            self._arrived.notify_all()
        return trace_service_pb2.ExportTraceServiceResponse()

    def wait_for(self, pred: Callable[[list[Span]], bool], timeout: float = WAIT) -> list[Span]:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while not pred(self._spans):
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"the receiver did not get the expected spans within {timeout} s: {self._spans}")
                self._arrived.wait(left)
            return list(self._spans)


def _value(value: Any) -> Any:
    return getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    """A running receiver and its endpoint."""
    service = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield service, f"http://127.0.0.1:{port}"
    server.stop(0)


def start_traced(endpoint: str, *args: str) -> RunningPlugin:
    return RunningPlugin(
        [sys.executable, str(TRACED), *args],
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "traced"},
        fastpath=True,
    )


def invoke(
    plugin: RunningPlugin, trace_context: dict[str, str], metadata: dict[str, Any] | None = None, *, fast: bool = False
) -> str | None:
    """Calls ``Invoke`` over gRPC (raising ``grpc.RpcError`` if it fails)
    or over the fast path (returning the ``ERROR`` frame's message, if any)."""
    request = plugin_pb2.InvokeRequest(
        phase="pre_container",
        invocation_id="inv-1",
        attempt=2,
        context=dict_to_struct({"metadata": metadata or {}}),
        trace_context=trace_context,
    )
    if not fast:
        plugin.stub.Invoke(request, metadata=plugin.metadata, timeout=10)
        return None
    assert plugin.fastpath_socket is not None
    with FastClient(plugin.fastpath_socket).greeted(plugin.token) as client:
        answer = client.call(1, request, timeout=10)
    return answer.error().message if answer.kind == ERROR else None


def the(spans: list[Span], name: str) -> Span:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, spans
    return found[0]


def author_line(stderr: str) -> dict[str, Any]:
    for line in stderr.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("message") == "author log line":
            assert isinstance(record, dict)
            return record
    pytest.fail(f"no author log line on stderr:\n{stderr}")


@pytest.mark.parametrize("fast", [False, True], ids=["grpc", "fastpath"])
@pytest.mark.parametrize("mode", [[], ["async"]], ids=["plain-def", "async-def"])
def test_invoke_continues_the_hosts_trace_and_shutdown_flushes(
    receiver: tuple[Receiver, str], mode: list[str], fast: bool
) -> None:
    service, endpoint = receiver
    with start_traced(endpoint, *mode) as plugin:
        assert invoke(plugin, {"traceparent": TRACEPARENT, "tracestate": "vendor=x"}, fast=fast) is None
        assert plugin.shutdown() == 0
        stderr = plugin.stderr()
    # The process has exited: the spans left with the flush at shutdown
    # (the batch would otherwise have waited 5 s), or never.
    spans = service.wait_for(lambda s: len(s) >= 2)
    invoked = the(spans, "outboard.plugin.invoke")
    assert (invoked.trace_id, invoked.parent_span_id) == (HOST_TRACE, HOST_SPAN)
    assert invoked.service == "traced"
    assert invoked.attributes == {
        "outboard.plugin": "traced",
        "outboard.phase": "pre_container",
        "outboard.invocation_id": "inv-1",
        "outboard.attempt": 2,
    }
    assert invoked.error is None
    author = the(spans, "author.work")
    assert (author.trace_id, author.parent_span_id) == (HOST_TRACE, invoked.span_id)
    line = author_line(stderr)
    assert (line["trace_id"], line["span_id"]) == (HOST_TRACE, author.span_id)


def test_a_failed_invoke_marks_its_span(receiver: tuple[Receiver, str]) -> None:
    service, endpoint = receiver
    with start_traced(endpoint) as plugin:
        with pytest.raises(grpc.RpcError) as failed:
            invoke(plugin, {"traceparent": TRACEPARENT}, {"traced": {"fail": "no such job"}})
        over_fast = invoke(plugin, {"traceparent": TRACEPARENT}, {"traced": {"fail": "no such job"}}, fast=True)
        assert plugin.shutdown() == 0
    spans = service.wait_for(lambda s: len([x for x in s if x.name == "outboard.plugin.invoke"]) >= 2)
    invoked = [s for s in spans if s.name == "outboard.plugin.invoke"]
    # The same message on both paths, and on both spans.
    assert [s.error for s in invoked] == [failed.value.details(), over_fast]
    assert "no such job" in (over_fast or "")


def test_sigterm_flushes_the_spans(receiver: tuple[Receiver, str]) -> None:
    service, endpoint = receiver
    with start_traced(endpoint) as plugin:
        invoke(plugin, {"traceparent": TRACEPARENT})
        os.killpg(plugin.process.pid, signal.SIGTERM)
        assert plugin.process.wait(timeout=WAIT) == 0
    spans = service.wait_for(lambda s: len(s) >= 2)
    assert the(spans, "outboard.plugin.invoke").parent_span_id == HOST_SPAN


def test_a_malformed_traceparent_starts_a_new_root(receiver: tuple[Receiver, str]) -> None:
    service, endpoint = receiver
    with start_traced(endpoint) as plugin:
        invoke(plugin, {"traceparent": "00-not-a-trace-context-01"})
        assert plugin.shutdown() == 0
        stderr = plugin.stderr()
    spans = service.wait_for(lambda s: len(s) >= 2)
    invoked = the(spans, "outboard.plugin.invoke")
    assert invoked.parent_span_id is None
    assert invoked.trace_id not in (HOST_TRACE, "0" * 32)
    assert the(spans, "author.work").parent_span_id == invoked.span_id
    assert author_line(stderr)["trace_id"] == invoked.trace_id


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True, timeout=60)


def test_without_the_environment_opentelemetry_is_not_even_imported() -> None:
    done = run_python(
        "import sys\n"
        "from outboard_plugin import log, trace\n"
        "log.init()\n"
        "trace.init()\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n",
        {"OTEL_SERVICE_NAME": "p"},
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "[]\n", "")


def test_missing_packages_cost_one_warning_line_and_nothing_else() -> None:
    done = run_python(
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # as if not installed\n"
        "from outboard_plugin import Invocation, log, trace\n"
        "log.init()\n"
        "trace.init()\n"
        "print(trace.invoke_span('p', Invocation('pre_container')))\n",
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
    )
    assert (done.returncode, done.stdout) == (0, "None\n")
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    record = json.loads(lines[0])
    assert record["level"] == "warning"
    assert "outboard-plugin[otel]" in record["message"]


@pytest.mark.parametrize(
    "env, wanted",
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_which_environment_asks_for_export(env: dict[str, str], wanted: bool) -> None:
    assert trace.wanted(env) is wanted

"""``outboard.v1.PluginService`` on top of a :class:`~outboard_plugin.Plugin`:
wire types in, friendly types to the plugin, wire types out."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

import grpc
import grpc.aio

from ._proto import plugin_pb2
from .config import Config
from .errors import PluginError
from .health import Health
from .invocation import Invocation
from .jsonvalue import struct_to_dict
from .manifest import Manifest
from .plugin import Plugin
from .reply import Reply

log = logging.getLogger("outboard_plugin")

#: How long in-flight calls get when ``Shutdown`` names no grace (seconds).
DEFAULT_GRACE = 5.0

Context = grpc.aio.ServicerContext[Any, Any]


class _Busy:
    """How many plain ``def`` plugin methods are running in worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def run(self, method: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            self._count += 1
        try:
            return method(*args)
        finally:
            with self._lock:
                self._count -= 1

    @property
    def count(self) -> int:
        with self._lock:
            return self._count


#: The plugin methods running in worker threads now.
busy = _Busy()


async def call_plugin(executor: Executor | None, method: Callable[..., Any], *args: Any) -> Any:
    """Calls a plugin method: an ``async def`` on the event loop, a plain
    one in a worker thread (awaiting what it returns if that is awaitable)."""
    if inspect.iscoroutinefunction(method):
        return await method(*args)
    result = await asyncio.get_running_loop().run_in_executor(executor, busy.run, method, *args)
    if inspect.isawaitable(result):
        result = await result
    return result


class PluginServicer:
    """The four calls. Registered with the generated
    ``add_PluginServiceServicer_to_server``."""

    def __init__(
        self,
        plugin: Plugin,
        manifest: Manifest,
        protocol_version: int,
        health: Health,
        executor: Executor | None,
        stop: Callable[[float, str], None],
        abandoned: asyncio.Event,
    ) -> None:
        self._plugin = plugin
        self._name = manifest.name
        self._manifest = manifest.to_proto(protocol_version)
        self._protocol_version = protocol_version
        self._health = health
        self._executor = executor
        self._stop = stop
        #: Set when the shutdown grace is over: calls still running give up.
        self._abandoned = abandoned

    async def Describe(self, request: plugin_pb2.DescribeRequest, context: Context) -> plugin_pb2.DescribeResponse:
        log.debug(
            "describe",
            extra={"host_version": request.host_version, "host_protocol_versions": list(request.host_protocol_versions)},
        )
        return plugin_pb2.DescribeResponse(manifest=self._manifest)

    async def Configure(self, request: plugin_pb2.ConfigureRequest, context: Context) -> plugin_pb2.ConfigureResponse:
        config = Config(
            values=struct_to_dict(request.config if request.HasField("config") else None),
            granted_permissions=list(request.granted_permissions),
            instance_name=request.instance_name,
            protocol_version=request.protocol_version or self._protocol_version,
            health=self._health,
        )
        _, failure = await self._run("configure", self._plugin.configure, config)
        if failure is not None:
            code, message = failure
            log.warning("configure refused", extra={"error": message})
            await context.abort(code, message)
        return plugin_pb2.ConfigureResponse()

    async def Invoke(self, request: plugin_pb2.InvokeRequest, context: Context) -> plugin_pb2.InvokeResponse:
        now = time.time()
        deadlines = []
        if request.HasField("deadline"):
            deadlines.append(request.deadline.ToNanoseconds() / 1e9)
        remaining = context.time_remaining()
        if remaining is not None:
            deadlines.append(now + remaining)
        deadline = min(deadlines) if deadlines else None
        phase = request.phase
        if deadline is not None and deadline <= now:
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"{self._name}: the deadline of the call for phase {phase!r} had passed when it arrived",
            )
        invocation = Invocation(
            phase=phase,
            context=struct_to_dict(request.context if request.HasField("context") else None),
            invocation_id=request.invocation_id,
            attempt=request.attempt,
            deadline=deadline,
            trace_context=dict(request.trace_context),
        )
        started = time.monotonic()
        work = asyncio.ensure_future(self._run("invoke", self._plugin.invoke, invocation))
        abandoned = asyncio.ensure_future(self._abandoned.wait())
        try:
            timeout = None if deadline is None else max(0.0, deadline - time.time())
            done, _ = await asyncio.wait({work, abandoned}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            abandoned.cancel()
            # Past the deadline, at the end of the grace, or when the host
            # cancels the call: an `async def` is cancelled here; a plain
            # `def` keeps its thread until it returns.
            if not work.done():
                work.cancel()
        elapsed_ms = round((time.monotonic() - started) * 1000)
        fields = {"phase": phase, "invocation_id": request.invocation_id, "elapsed_ms": elapsed_ms}
        if work not in done:
            if abandoned in done:
                log.warning("invoke cancelled: the shutdown grace is over", extra=fields)
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE,
                    f"{self._name} is shutting down and cancelled the call for phase {phase!r} "
                    "when the grace period ran out",
                )
            log.warning("invoke cut off at its deadline", extra=fields)
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"{self._name} did not finish phase {phase!r} before the deadline "
                f"(cancelled after {elapsed_ms} ms)",
            )
        reply, failure = work.result()
        if failure is not None:
            code, message = failure
            log.warning("invoke failed", extra={**fields, "error": message})
            await context.abort(code, message)
        if not isinstance(reply, Reply):
            message = (
                f"invoke returned {type(reply).__name__}, not a Reply "
                "(return Reply.ok() for no change)"
            )
            log.error("invalid reply", extra={**fields, "error": message})
            await context.abort(grpc.StatusCode.INTERNAL, message)
        try:
            response = reply.to_proto()
        except PluginError as e:
            log.error("invalid reply", extra={**fields, "error": e.status_message})
            await context.abort(e.code, e.status_message)
        log.debug("invoked", extra={**fields, "ops": len(response.patch)})
        return response

    async def Shutdown(self, request: plugin_pb2.ShutdownRequest, context: Context) -> plugin_pb2.ShutdownResponse:
        # No grace at all means the default; a negative one means none.
        grace = max(0.0, request.grace.ToNanoseconds() / 1e9) if request.HasField("grace") else DEFAULT_GRACE
        # Answer first; the server stops afterwards. A second Shutdown is answered all the same.
        self._stop(grace, request.reason or "Shutdown call")
        return plugin_pb2.ShutdownResponse()

    async def _run(
        self, what: str, method: Callable[..., Any], arg: Any
    ) -> tuple[Any, tuple[grpc.StatusCode, str] | None]:
        """Runs a plugin method: what it returned, and the status to answer
        with if it raised (``None`` if it did not)."""
        try:
            return await call_plugin(self._executor, method, arg), None
        except PluginError as e:
            return None, (e.code, e.status_message)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            # The traceback goes into one log record; the host gets the gist.
            log.exception(f"{what} raised {type(e).__name__}")
            return None, (grpc.StatusCode.INTERNAL, f"{self._name}: {what} raised {type(e).__name__}: {e}")

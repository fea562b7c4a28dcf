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

from . import trace as _trace
from ._proto import plugin_pb2
from .auth import PLUGIN_SERVICE_PREFIX
from .config import Config
from .errors import PluginError
from .events import handler_for
from .fastpath import FEATURE as FASTPATH_FEATURE
from .health import Health
from .host import HostServices
from .invocation import Invocation
from .jsonvalue import struct_to_dict
from .manifest import Manifest
from .plugin import Plugin
from .reply import Reply
from .workers import WorkerPool

log = logging.getLogger("outboard_plugin")

#: How long in-flight calls get when ``Shutdown`` names no grace (seconds).
DEFAULT_GRACE = 5.0

Context = grpc.aio.ServicerContext[Any, Any]
#: How an ``Invoke`` fails: the gRPC status code and message.
Failure = tuple[grpc.StatusCode, str]
#: How :meth:`PluginServicer.answer` answers an ``Invoke``.
Answer = plugin_pb2.InvokeResponse | Failure


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
    ``add_PluginServiceServicer_to_server``; :meth:`answer` also answers
    the fast path's calls (:mod:`.fastpath`), whose feature the served
    manifest lists when ``fastpath`` is true."""

    def __init__(
        self,
        plugin: Plugin,
        manifest: Manifest,
        protocol_version: int,
        health: Health,
        executor: Executor | None,
        stop: Callable[[float, str], None],
        host: HostServices | None = None,
        fastpath: bool = False,
    ) -> None:
        self._plugin = plugin
        #: The host's services, handed to the plugin in every call.
        self._host = host if host is not None else HostServices()
        #: The manifest's event patterns: an event matching none has no handler.
        self._event_patterns = list(manifest.event_subscriptions)
        self._name = manifest.name
        self._manifest = manifest.to_proto(protocol_version)
        # The SDK serves the fast path, so the SDK says whether it does
        # (PROTOCOL.md §18): listed only when its socket is bound.
        features = [f for f in self._manifest.features if f != FASTPATH_FEATURE]
        if fastpath:
            features.append(FASTPATH_FEATURE)
        if features != list(self._manifest.features):
            del self._manifest.features[:]
            self._manifest.features.extend(features)
        self._protocol_version = protocol_version
        self._health = health
        self._executor = executor
        self._stop = stop
        #: The ``Invoke`` calls waiting for the plugin now.
        self._calls: set[_Call] = set()
        #: True once the shutdown grace is over: calls still running give up.
        self._abandoned = False

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
            host=self._host,
        )
        _, failure = await self._run("configure", self._plugin.configure, config)
        if failure is not None:
            code, message = failure
            log.warning("configure refused", extra={"error": message})
            await context.abort(code, message)
        return plugin_pb2.ConfigureResponse()

    async def Invoke(self, request: plugin_pb2.InvokeRequest, context: Context) -> plugin_pb2.InvokeResponse:
        remaining = context.time_remaining()
        outcome = await self.answer(request, None if remaining is None else time.time() + remaining)
        if isinstance(outcome, tuple):
            await context.abort(*outcome)
        return outcome

    async def answer(self, request: plugin_pb2.InvokeRequest, timeout_at: float | None) -> Answer:
        """Answers one ``Invoke``, whichever way it came (gRPC or the fast
        path): the response, or the status the call fails with as a
        ``(code, message)`` tuple. ``timeout_at`` is the transport's own
        deadline (``time.time()`` based: the gRPC call's timeout, the
        fast-path frame's), if any; the earlier of it and the request's
        ``deadline`` applies. Cancelling the awaiting task (the host gave
        up) cancels an ``async def`` plugin method and abandons a plain one
        in its worker thread."""
        now = time.time()
        deadline = request.deadline.ToNanoseconds() / 1e9 if request.HasField("deadline") else None
        if timeout_at is not None and (deadline is None or timeout_at < deadline):
            deadline = timeout_at
        phase = request.phase
        if deadline is not None and deadline <= now:
            return (
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
            host=self._host,
        )
        # The host's trace continues here: the plugin's work, its spans and
        # the log lines about this call are inside this span.
        span = _trace.invoke_span(self._name, invocation)
        if span is None:
            return await self._answer(invocation, deadline)
        with span:
            return await self._answer(invocation, deadline)

    async def _answer(self, invocation: Invocation, deadline: float | None) -> Answer:
        """Runs ``plugin.invoke`` within its deadline and the shutdown grace
        and turns the outcome into the response, or into the failure (which
        marks the ``Invoke`` span, if any, as failed)."""
        started = time.monotonic()
        timeout = None if deadline is None else max(0.0, deadline - time.time())
        outcome = await self._invoke(invocation, timeout)
        elapsed_ms = round((time.monotonic() - started) * 1000)
        phase = invocation.phase
        if outcome is _ABANDONED:
            return self._failed(
                "invoke cancelled: the shutdown grace is over",
                invocation,
                elapsed_ms,
                grpc.StatusCode.UNAVAILABLE,
                f"{self._name} is shutting down and cancelled the call for phase {phase!r} "
                "when the grace period ran out",
            )
        if outcome is _DEADLINE:
            return self._failed(
                "invoke cut off at its deadline",
                invocation,
                elapsed_ms,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"{self._name} did not finish phase {phase!r} before the deadline "
                f"(cancelled after {elapsed_ms} ms)",
            )
        assert isinstance(outcome, tuple)
        reply, failure = outcome
        if failure is not None:
            code, message = failure
            return self._failed("invoke failed", invocation, elapsed_ms, code, message)
        if not isinstance(reply, Reply):
            message = (
                f"invoke returned {type(reply).__name__}, not a Reply "
                "(return Reply.ok() for no change)"
            )
            return self._failed("invalid reply", invocation, elapsed_ms, grpc.StatusCode.INTERNAL, message, logging.ERROR)
        try:
            response = reply.to_proto()
        except PluginError as e:
            return self._failed("invalid reply", invocation, elapsed_ms, e.code, e.status_message, logging.ERROR)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("invoked", extra={**_fields(invocation, elapsed_ms), "ops": len(response.patch)})
        return response

    def _failed(
        self,
        what: str,
        invocation: Invocation,
        elapsed_ms: int,
        code: grpc.StatusCode,
        message: str,
        level: int = logging.WARNING,
    ) -> Failure:
        """Logs why the call fails, marks its span as failed, and returns the
        status to answer with."""
        log.log(level, what, extra={**_fields(invocation, elapsed_ms), "error": message})
        _trace.failed(message)
        return code, message

    async def Shutdown(self, request: plugin_pb2.ShutdownRequest, context: Context) -> plugin_pb2.ShutdownResponse:
        # No grace at all means the default; a negative one means none.
        grace = max(0.0, request.grace.ToNanoseconds() / 1e9) if request.HasField("grace") else DEFAULT_GRACE
        # Answer first; the server stops afterwards. A second Shutdown is answered all the same.
        self._stop(grace, request.reason or "Shutdown call")
        return plugin_pb2.ShutdownResponse()

    def abandon(self) -> None:
        """The shutdown grace is over: ``Invoke`` calls still waiting for the
        plugin answer ``UNAVAILABLE`` now (an ``async def`` is cancelled), as
        will any that starts from now on."""
        self._abandoned = True
        for call in list(self._calls):
            call.settle(_ABANDONED)

    async def _invoke(self, invocation: Invocation, timeout: float | None) -> Any:
        """Runs ``plugin.invoke`` for at most ``timeout`` seconds: what
        :meth:`_run` would return, or :data:`_DEADLINE` or :data:`_ABANDONED`.

        Per call this costs one future and, with a deadline, one timer: a
        plain ``def`` hands its result from its worker thread straight to
        the future, and the deadline and the end of the grace settle the
        same future. (``asyncio.wait`` over a task running the method and a
        task waiting for the end of the grace, with its timeout, cost about
        100 µs a call: DECISIONS.md, "Python SDK".)
        """
        if self._abandoned:
            return _ABANDONED
        loop = asyncio.get_running_loop()
        call = _Call(loop)
        timer = None if timeout is None else loop.call_later(timeout, call.settle, _DEADLINE)
        self._calls.add(call)
        try:
            # The work starts last: a worker thread woken now gets the GIL
            # as soon as the loop goes back to waiting.
            method = handler_for(self._plugin, self._event_patterns, invocation.phase)
            try:
                if inspect.iscoroutinefunction(method):
                    call.follow(loop.create_task(self._run("invoke", method, invocation)))
                else:
                    # A worker thread does not inherit the context (the span).
                    method = _trace.in_context(method)
                    if isinstance(self._executor, WorkerPool):
                        self._executor.call(_in_thread, loop, call, self._from_thread, method, invocation)
                    else:
                        loop.run_in_executor(self._executor, _in_thread, loop, call, self._from_thread, method, invocation)
            except Exception as e:  # the executor is shut down
                call.settle((None, self._internal("invoke", e)))
            return await call.waiter
        finally:
            self._calls.discard(call)
            if timer is not None:
                timer.cancel()
            # Past the deadline, at the end of the grace, or when the host
            # cancels the call: an `async def` is cancelled here; a plain
            # `def` keeps its thread until it returns.
            call.cancel()

    def _from_thread(self, call: _Call, result: Any, error: BaseException | None) -> None:
        """On the loop: what a plain ``def`` plugin method returned or raised
        in its worker thread, turned into what :meth:`_run` returns. Nothing
        once the call is over (cut off, cancelled), as before."""
        if call.waiter.done():
            return
        if error is None:
            # A Reply is the common answer, and never awaitable (the
            # Awaitable check alone costs more than the rest of this).
            if type(result) is not Reply and inspect.isawaitable(result):
                call.follow(asyncio.ensure_future(self._run("invoke", _awaiting, result)))
                return
            call.settle((result, None))
        elif isinstance(error, PluginError):
            call.settle((None, (error.code, error.status_message)))
        elif isinstance(error, Exception):
            call.settle((None, self._internal("invoke", error)))
        elif isinstance(error, asyncio.CancelledError):
            call.waiter.cancel()
        else:
            # SystemExit, KeyboardInterrupt: raised in the handler, as
            # awaiting the thread's result did before.
            call.waiter.set_exception(error)

    def _internal(self, what: str, e: Exception) -> tuple[grpc.StatusCode, str]:
        # The traceback goes into one log record; the host gets the gist.
        log.error(f"{what} raised {type(e).__name__}", exc_info=e)
        return grpc.StatusCode.INTERNAL, f"{self._name}: {what} raised {type(e).__name__}: {e}"

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
            return None, self._internal(what, e)


def _fields(invocation: Invocation, elapsed_ms: int) -> dict[str, Any]:
    """The fields of the log records about one ``Invoke``."""
    return {"phase": invocation.phase, "invocation_id": invocation.invocation_id, "elapsed_ms": elapsed_ms}


#: What :meth:`PluginServicer._invoke` returns when the deadline came first.
_DEADLINE = object()
#: What :meth:`PluginServicer._invoke` returns when the shutdown grace ran out first.
_ABANDONED = object()


class _Call:
    """One ``Invoke`` waiting for the plugin: the future its handler awaits,
    settled by whichever comes first (the plugin's answer, the deadline, the
    end of the grace), and the task running an ``async def``, if any."""

    __slots__ = ("waiter", "task")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.waiter: asyncio.Future[Any] = loop.create_future()
        self.task: asyncio.Future[Any] | None = None

    def settle(self, outcome: Any) -> None:
        if not self.waiter.done():
            self.waiter.set_result(outcome)

    def follow(self, task: asyncio.Future[Any]) -> None:
        """Settles the call with what ``task`` returns (or raises)."""
        self.task = task
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        if self.waiter.done():
            return
        if task.cancelled():
            self.waiter.cancel()
        elif (error := task.exception()) is not None:
            self.waiter.set_exception(error)
        else:
            self.waiter.set_result(task.result())

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()


def _in_thread(
    loop: asyncio.AbstractEventLoop,
    call: _Call,
    done: Callable[[_Call, Any, BaseException | None], None],
    method: Callable[[Any], Any],
    arg: Any,
) -> None:
    """Runs a plain ``def`` plugin method in a worker thread and hands what
    it returned or raised to ``done`` on the loop."""
    result: Any = None
    error: BaseException | None = None
    try:
        result = busy.run(method, arg)
    except BaseException as e:  # handed to the loop, which decides
        error = e
    try:
        loop.call_soon_threadsafe(done, call, result, error)
    except RuntimeError:
        # The loop is closed: the process is exiting, nobody waits for it.
        pass


async def _awaiting(awaitable: Any) -> Any:
    return await awaitable


def plugin_service_handlers(servicer: PluginServicer) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """``PluginService``'s method handlers by full method name, for
    :class:`~outboard_plugin.auth.TokenGate` (what the generated
    ``add_PluginServiceServicer_to_server`` registers, without registering)."""
    prefix = PLUGIN_SERVICE_PREFIX
    return {
        prefix + "Describe": grpc.unary_unary_rpc_method_handler(
            servicer.Describe,
            request_deserializer=plugin_pb2.DescribeRequest.FromString,
            response_serializer=plugin_pb2.DescribeResponse.SerializeToString,
        ),
        prefix + "Configure": grpc.unary_unary_rpc_method_handler(
            servicer.Configure,
            request_deserializer=plugin_pb2.ConfigureRequest.FromString,
            response_serializer=plugin_pb2.ConfigureResponse.SerializeToString,
        ),
        prefix + "Invoke": grpc.unary_unary_rpc_method_handler(
            servicer.Invoke,
            request_deserializer=plugin_pb2.InvokeRequest.FromString,
            response_serializer=plugin_pb2.InvokeResponse.SerializeToString,
        ),
        prefix + "Shutdown": grpc.unary_unary_rpc_method_handler(
            servicer.Shutdown,
            request_deserializer=plugin_pb2.ShutdownRequest.FromString,
            response_serializer=plugin_pb2.ShutdownResponse.SerializeToString,
        ),
    }

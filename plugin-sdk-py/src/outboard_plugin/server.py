"""Serving a plugin (PROTOCOL.md §5, §6, §8.6, §12): bind the socket, print
the handshake line, serve gRPC until asked to stop, then stop gracefully."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import sys

import grpc
import grpc.aio

from . import trace as _trace
from .auth import TokenGate
from .errors import NotStartedByHost, ServeError, SettingsError
from .fastpath import FastpathServer
from .health import Health
from .manifest import ManifestError
from .plugin import Plugin
from .reflection import LazyReflection
from .service import PluginServicer, busy, plugin_service_handlers
from .settings import Settings, remove_from_environment
from .workers import WorkerPool

log = logging.getLogger("outboard_plugin")

#: The grace after SIGTERM or SIGINT (seconds). The host sends SIGKILL 2 s
#: after SIGTERM; this leaves time to clean up before it.
SIGNAL_GRACE = 1.5
#: The most of the grace kept back for cancelling calls still running and
#: closing connections, so that the process exits within the grace.
CLOSE_RESERVE = 0.5
#: The prefix of the worker threads that run plain ``def`` plugin methods.
WORKER_PREFIX = "outboard-plugin-worker"

_PLUGIN_SERVICE = "outboard.v1.PluginService"


async def serve_with(plugin: Plugin, settings: Settings) -> None:
    """Serves ``plugin`` as ``settings`` say: binds the socket (mode 0600),
    prints the handshake line, serves until a ``Shutdown`` call, SIGTERM or
    SIGINT (when ``settings.handle_signals``), then stops gracefully and
    returns.

    A graceful stop answers the ``Shutdown`` call, stops accepting calls,
    reports ``NOT_SERVING``, lets calls in flight run for most of the grace
    (the ``Shutdown`` call's, default 5 s, or :data:`SIGNAL_GRACE`), cancels
    those still running with ``UNAVAILABLE``, calls ``plugin.shutdown()`` and
    removes the socket file. Raises :class:`ServeError` naming the plugin if
    it cannot serve.

    When the host offers the invoke fast path (``OUTBOARD_FASTPATH_SOCKET``)
    and ``settings.fastpath`` is true, its socket is bound (0600) before the
    handshake line too, the served manifest lists ``invoke-fastpath/1``,
    its calls get the same grace, and its socket file is removed as well
    (:mod:`.fastpath`).

    When the ``OTEL_*`` environment asks for span export (:mod:`.trace`),
    every ``Invoke`` runs in a span continuing the host's trace, and the
    spans still queued are sent (for at most 0.4 s) when serving ends.
    """
    manifest = plugin.manifest()
    name = manifest.name
    try:
        manifest.validate()
    except ManifestError as e:
        raise ServeError(f"{name}: the plugin's manifest is invalid: {e}") from None

    _trace.init()
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    request: list[tuple[float, str]] = []

    fast: FastpathServer | None = None

    def stop(grace: float, reason: str) -> None:
        # The first request wins.
        if not request:
            request.append((grace, reason))
            stopping.set()
            # At once, not when the loop gets to it: a call the host sends
            # after the Shutdown call was answered is refused.
            if fast is not None:
                fast.refuse_new_calls()

    # Imported here, not at the top: only the server needs them.
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_health.v1._async import HealthServicer

    executor = WorkerPool(thread_name_prefix=WORKER_PREFIX)
    health = Health()
    health_servicer = HealthServicer()
    # SERVING from the start (§10); the plugin gets a handle in Configure.
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health._attach(health_servicer, loop)

    servicer = PluginServicer(
        plugin,
        manifest,
        settings.protocol_version,
        health,
        executor,
        stop,
        settings.host_services(),
        fastpath=settings.serves_fastpath,
    )
    # The token check is the generic handler serving PluginService (not an
    # interceptor, which costs a coroutine on every call), so PluginService
    # is not registered with the generated add_PluginServiceServicer_to_server.
    server = grpc.aio.server(
        handlers=[TokenGate(settings.token, plugin_service_handlers(servicer))],
        options=[("grpc.so_reuseport", 0)],
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_generic_rpc_handlers([LazyReflection([_PLUGIN_SERVICE, "grpc.health.v1.Health"])])

    path = settings.socket_path
    bound = False
    try:
        try:
            # gRPC's C core binds (and listens) here. The runtime directory
            # is 0700, which covers the moment between bind and chmod; the
            # umask is left alone because gRPC's own threads are already
            # running (§5).
            server.add_insecure_port(f"unix:{path}")
            bound = True
        except RuntimeError as e:
            raise ServeError(f"{name}: cannot bind socket {path}: {_bind_problem(path) or e}") from None
        try:
            os.chmod(path, 0o600)
        except OSError as e:
            raise ServeError(f"{name}: cannot set permissions on socket {path}: {e.strerror}") from None
        await server.start()
        if settings.serves_fastpath:
            assert settings.fastpath_socket is not None
            fast_path = settings.fastpath_socket
            fast = FastpathServer(servicer, settings.token, name)
            try:
                await fast.start(fast_path)
            except OSError as e:
                problem = _bind_problem(fast_path) or e.strerror or str(e)
                fast = None
                raise ServeError(f"{name}: cannot bind the fast-path socket {fast_path}: {problem}") from None
        # Listen for signals before the handshake, so that a SIGTERM right
        # after it is not lost (nor kills the process without cleanup).
        if settings.handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop, SIGNAL_GRACE, signal.Signals(signum).name)
        try:
            sys.stdout.write(f"outboard|{settings.protocol_version}|unix|{path}|grpc\n")
            sys.stdout.flush()
        except OSError as e:
            raise ServeError(f"{name}: cannot write the handshake line to stdout: {e}") from None
        log.debug(
            "serving",
            extra={
                "socket": path,
                "fastpath_socket": settings.fastpath_socket if fast is not None else None,
                "protocol_version": settings.protocol_version,
            },
        )

        await stopping.wait()
        grace, reason = request[0]
        log.debug(
            "stopping: no new calls, waiting for calls in flight",
            extra={"reason": reason, "grace_ms": round(grace * 1000)},
        )
        health.set_serving(False)
        reserve = min(CLOSE_RESERVE, grace / 4)
        # The server stops taking calls now and cancels those still running
        # when `grace - reserve` is over.
        drain = asyncio.ensure_future(server.stop(grace - reserve))
        # The fast path's calls in flight get the same grace.
        draining = {drain} if fast is None else {drain, asyncio.ensure_future(fast.drain())}
        done, _ = await asyncio.wait(draining, timeout=grace - reserve)
        if len(done) < len(draining) or busy.count:
            log.warning(
                "calls still running at the end of the grace period; cancelling them",
                extra={"grace_ms": round(grace * 1000)},
            )
        # Those still waiting answer UNAVAILABLE, over gRPC and the fast path.
        servicer.abandon()
        await asyncio.wait(draining, timeout=reserve)
        await _call_shutdown(plugin, executor)
    finally:
        if settings.handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        await server.stop(0)
        if fast is not None:
            fast.close()
            _remove_socket(settings.fastpath_socket or "")
        # Idle workers exit at once; a call still blocked in one is left
        # behind (run() then exits without waiting for it).
        executor.shutdown(wait=busy.count == 0, cancel_futures=True)
        if bound:
            _remove_socket(path)
        # Blocking, but bounded; the process is about to exit.
        _trace.shutdown()
    log.debug("stopped")


async def _call_shutdown(plugin: Plugin, executor: WorkerPool) -> None:
    from .service import call_plugin

    try:
        await asyncio.wait_for(call_plugin(executor, plugin.shutdown), CLOSE_RESERVE)
    except TimeoutError:
        log.warning("plugin.shutdown() did not return in time; exiting anyway")
    except Exception:
        log.exception("plugin.shutdown() raised")


def _bind_problem(path: str) -> str | None:
    """What the C core's bind error does not say: the likely reason."""
    directory = os.path.dirname(path) or "/"
    if not os.path.isdir(directory):
        return f"the directory {directory} does not exist"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"the directory {directory} is not writable"
    if os.path.lexists(path):
        return "something already exists at that path"
    return None


def _remove_socket(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warning("cannot remove the socket file", extra={"socket": path, "error": e.strerror})


async def serve(plugin: Plugin, *, fastpath: bool = True) -> None:
    """Serves ``plugin`` for the host that started this process: reads the
    ``OUTBOARD_*`` environment (:meth:`Settings.from_env`) and calls
    :func:`serve_with`. Raises :class:`ServeError` if this process was not
    started by a host (run by hand) or cannot serve. ``fastpath=False``
    declines the invoke fast path even if the host offers it
    (:attr:`Settings.fastpath`)."""
    name = plugin.manifest().name
    try:
        settings = Settings.from_env()
    except NotStartedByHost:
        raise ServeError(by_hand_message(name)) from None
    except SettingsError as e:
        raise ServeError(f"{name}: {e}") from None
    # Read once, kept in `settings`: a child the plugin starts must not see the token.
    remove_from_environment()
    if not fastpath:
        settings = dataclasses.replace(settings, fastpath=False)
    await serve_with(plugin, settings)


def by_hand_message(name: str) -> str:
    """The one sentence a person who ran the plugin by hand reads (§3)."""
    # The command as it was typed, so that the suggestion can be pasted.
    command = sys.argv[0] if sys.argv and sys.argv[0] else "<this command>"
    return (
        f"{name} is an Outboard plugin: start it from an Outboard host "
        f"(for example `outboard describe -- {command}`), not directly."
    )


def run(plugin: Plugin, *, fastpath: bool = True) -> int:
    """The whole ``main`` of a plugin: logs JSON lines to stderr
    (:func:`outboard_plugin.log.init`), :func:`serve`\\ s, and returns the
    exit status: 0 after a graceful stop, 1 with one line on stderr
    otherwise (run by hand included). Use it as
    ``raise SystemExit(run(MyPlugin()))``; ``fastpath=False`` keeps every
    ``Invoke`` on gRPC even when the host offers the fast path."""
    from . import log as _log

    _log.init()
    # Lines printed after the handshake become log lines at once.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    try:
        asyncio.run(serve(plugin, fastpath=fastpath))
        status = 0
    except ServeError as e:
        sys.stderr.write(f"{e}\n")
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # A plain-`def` invoke still blocked after the grace would keep the
    # interpreter from exiting (its worker thread is joined at exit); the
    # host is waiting for the exit, so leave without it.
    if busy.count > 0:
        log.warning("a plugin call is still running after the grace period; exiting without waiting for it")
        sys.stderr.flush()
        os._exit(status)
    return status

"""Unit-testing a plugin without a host.

:class:`Harness` drives a plugin the way the SDK's server does, minus the
socket: the manifest is checked when the harness is made, the config and the
context make the same round trip through ``google.protobuf.Struct`` they
make on the wire (so ``3`` arrives as ``3``, a tuple as a list), and the
reply goes through its wire form and its patch is applied with the host's
rules::

    harness = Harness(Greeter())
    harness.configure({})
    out = harness.invoke("pre_container", {"env": {}})
    assert out.context == {"env": {"GREETING": "hello"}}

Host services (PROTOCOL.md §17) come from a :class:`FakeHost`: pass it as
``Harness(plugin, host=fake)`` and the plugin's ``config.kv()``,
``invocation.kv()`` and ``event.kv()`` reach it; deliver events with
:meth:`Harness.deliver`.

:class:`RunningPlugin` starts the plugin's executable as a real process, as
a host would, and drives it over its socket.

Errors raised by the plugin come out as :class:`~outboard_plugin.PluginError`
(anything else as :class:`~outboard_plugin.Failed`, as the server would
answer ``INTERNAL``).
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

from .config import Config
from .errors import Failed, PluginError
from .events import PHASE_PREFIX, Event, handler_for
from .fakehost import FakeHost, Published
from .health import Health
from .invocation import Invocation
from .jsonvalue import dict_to_struct, struct_to_dict
from .manifest import Manifest
from .patch import PatchError, apply
from .plugin import Plugin
from .reply import Outcome, Reply
from .service import call_plugin

__all__ = ["FakeHost", "Harness", "Invoked", "Published", "RunningPlugin"]


@dataclass
class Invoked:
    """The result of one invocation: the plugin's reply and the context as
    the host would pass it on."""

    #: What the plugin answered.
    reply: Reply
    #: The context after applying the reply's patch (unchanged on abort).
    context: dict[str, Any]

    @property
    def outcome(self) -> Outcome:
        """Continue or abort."""
        return self.reply.outcome

    def get(self, path: str, default: Any = None) -> Any:
        """The value at a JSON Pointer into the patched context."""
        return Invocation("", self.context).get(path, default)


class Harness:
    """Drives one plugin in-process, as the host would over gRPC."""

    def __init__(self, plugin: Plugin, *, host: FakeHost | None = None) -> None:
        self.plugin = plugin
        #: The fake host services every call gets (none without ``host``).
        self.host = host
        #: The plugin's manifest, read once and checked (raises ManifestError).
        self.manifest: Manifest = plugin.manifest()
        self.manifest.validate()
        #: The health handle every ``configure`` passes on.
        self.health = Health()
        self._ids = itertools.count(1)

    def configure(
        self,
        values: dict[str, Any] | None = None,
        *,
        granted: list[str] | None = None,
        instance_name: str | None = None,
    ) -> None:
        """Calls ``configure`` with ``values`` (default ``{}``); ``granted``
        defaults to every permission the manifest asks for."""
        config = Config(
            values=struct_to_dict(dict_to_struct(values or {})),
            granted_permissions=[p.name for p in self.manifest.permissions] if granted is None else list(granted),
            instance_name=instance_name or self.manifest.name,
            health=self.health,
        )
        if self.host is not None:
            config.host = self.host.services()
        self._call(self.plugin.configure, config)

    def invoke(self, phase: str, context: dict[str, Any], **fields: Any) -> Invoked:
        """Invokes ``phase`` with ``context``; ``fields`` sets other
        :class:`~outboard_plugin.Invocation` fields (``invocation_id``,
        ``attempt``, ``deadline``, ``trace_context``)."""
        fields.setdefault("invocation_id", f"harness-{next(self._ids)}")
        return self.invoke_with(Invocation(phase, context, **fields))

    def invoke_with(self, invocation: Invocation) -> Invoked:
        """Invokes the plugin with ``invocation`` as given (its context
        after the wire round trip)."""
        wire_context = struct_to_dict(dict_to_struct(invocation.context))
        # The plugin gets its own copy, as it would off the wire.
        invocation.context = struct_to_dict(dict_to_struct(wire_context))
        if self.host is not None and not invocation.host.is_offered:
            invocation.host = self.host.services()
        method = handler_for(self.plugin, self.manifest.event_subscriptions, invocation.phase)
        reply = self._call(method, invocation)
        if not isinstance(reply, Reply):
            raise Failed(f"invoke returned {type(reply).__name__}, not a Reply (return Reply.ok() for no change)")
        reply.to_proto()  # raises for an invalid patch or an abort without a message
        if reply.outcome is Outcome.ABORT:
            return Invoked(reply, wire_context)
        try:
            patched = apply(wire_context, reply.patch())
        except PatchError as e:
            raise Failed(f"the host would refuse the patch: {e}") from None
        return Invoked(reply, struct_to_dict(dict_to_struct(patched)))

    def deliver(self, event: Event) -> None:
        """Delivers ``event`` as the host does: an ``event:<name>``
        invocation whose context is the event, answered by
        ``plugin.on_event`` if the manifest subscribes to it, else
        ``UNIMPLEMENTED`` (raised as :class:`~outboard_plugin.Unimplemented`)."""
        invocation = Invocation(
            f"{PHASE_PREFIX}{event.name}", event.to_context(), invocation_id=event.id, attempt=event.attempt
        )
        self.invoke_with(invocation)

    def _call(self, method: Any, arg: Any) -> Any:
        async def call() -> Any:
            return await call_plugin(None, method, arg)

        try:
            return asyncio.run(call())
        except PluginError:
            raise
        except Exception as e:
            raise Failed(f"{type(e).__name__}: {e}") from e


# --- a real plugin process ----------------------------------------------------

#: The magic cookie a host sets (PROTOCOL.md §2.1).
_COOKIE = "0b7f4a8e-outboard-plugin"


class RunningPlugin:
    """A plugin executable started as a host starts it (own process group,
    a private 0700 directory for its socket, the ``OUTBOARD_*`` variables,
    stdin from ``/dev/null``), past its handshake line, with a gRPC channel
    to its socket. With ``fastpath=True`` it also offers the invoke fast
    path at :attr:`fastpath_socket` (calls over it are the test's own). Use it as a context manager: on exit the process group
    is killed if it still runs and the directory is removed::

        with RunningPlugin([".tools/venv/bin/secret-scrubber"]) as plugin:
            plugin.configure({})
            answer = plugin.invoke("pre_container", {"env": {"API_TOKEN": "x"}})
            assert answer.context["env"]["API_TOKEN"] == "[redacted]"
    """

    def __init__(
        self,
        command: list[str],
        *,
        env: dict[str, str] | None = None,
        handshake_timeout: float = 10.0,
        fastpath: bool = False,
    ) -> None:
        import os
        import secrets
        import subprocess
        import tempfile
        import time

        import grpc

        from ._proto import plugin_pb2_grpc

        #: The private directory holding the socket (a short path under /tmp).
        self.directory = tempfile.mkdtemp(prefix="obt-", dir="/tmp")
        #: The socket path given in ``OUTBOARD_SOCKET``.
        self.socket = os.path.join(self.directory, "plugin.sock")
        #: The token given in ``OUTBOARD_TOKEN``.
        self.token = secrets.token_hex(32)
        #: The fast-path socket offered in ``OUTBOARD_FASTPATH_SOCKET``
        #: (with ``fastpath=True``), else ``None``.
        self.fastpath_socket = os.path.join(self.directory, "fast.sock") if fastpath else None
        base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "USER", "LANG", "TZ", "TMPDIR")}
        base.update(env or {})
        base.update(
            OUTBOARD_MAGIC_COOKIE=_COOKIE,
            OUTBOARD_PROTOCOL_VERSIONS="1",
            OUTBOARD_SOCKET=self.socket,
            OUTBOARD_TOKEN=self.token,
            OUTBOARD_PLUGIN_NAME="under-test",
        )
        if self.fastpath_socket is not None:
            base["OUTBOARD_FASTPATH_SOCKET"] = self.fastpath_socket
        #: The process.
        self.process = subprocess.Popen(
            command,
            env=base,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + handshake_timeout
        line = b""
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line or line.startswith(b"outboard|"):
                break
        if not line.startswith(b"outboard|"):
            self.close()
            raise AssertionError(f"{command[0]} printed no handshake line; stderr:\n{self.stderr()}")
        #: The handshake line, without its newline.
        self.line = line.decode().rstrip("\r\n")
        #: A channel to the socket.
        self.channel = grpc.insecure_channel(f"unix:{self.socket}")
        #: The generated ``PluginService`` client.
        self.stub = plugin_pb2_grpc.PluginServiceStub(self.channel)

    @property
    def metadata(self) -> list[tuple[str, str]]:
        """The ``authorization`` metadata every call needs."""
        return [("authorization", f"Bearer {self.token}")]

    def describe(self) -> Any:
        """Calls ``Describe``; the ``Manifest`` message."""
        from ._proto import plugin_pb2

        return self.stub.Describe(plugin_pb2.DescribeRequest(), metadata=self.metadata, timeout=5).manifest

    def configure(self, values: dict[str, Any] | None = None, *, granted: list[str] | None = None) -> None:
        """Calls ``Configure``; ``granted`` defaults to every permission the
        manifest asks for. Raises ``grpc.RpcError`` if refused."""
        from ._proto import plugin_pb2

        if granted is None:
            granted = [p.name for p in self.describe().permissions]
        request = plugin_pb2.ConfigureRequest(
            config=dict_to_struct(values or {}), granted_permissions=granted, protocol_version=1, instance_name="under-test"
        )
        self.stub.Configure(request, metadata=self.metadata, timeout=5)

    def invoke(self, phase: str, context: dict[str, Any], *, timeout: float = 2.0) -> Invoked:
        """Calls ``Invoke``; the reply read back from the wire and the
        context with its patch applied. Raises ``grpc.RpcError`` on an error
        status."""
        import time
        import uuid

        from google.protobuf import timestamp_pb2

        from ._proto import plugin_pb2

        deadline = timestamp_pb2.Timestamp()
        deadline.FromNanoseconds(int((time.time() + timeout) * 1e9))
        request = plugin_pb2.InvokeRequest(
            phase=phase,
            invocation_id=str(uuid.uuid4()),
            attempt=1,
            deadline=deadline,
            context=dict_to_struct(context),
        )
        answer = self.stub.Invoke(request, metadata=self.metadata, timeout=timeout)
        return _read_answer(answer, struct_to_dict(dict_to_struct(context)))

    def shutdown(self, grace: float = 5.0, *, wait: float | None = None) -> int:
        """Calls ``Shutdown`` and waits for the exit (up to ``grace`` plus a
        second); the exit status."""
        from google.protobuf import duration_pb2

        from ._proto import plugin_pb2

        request = plugin_pb2.ShutdownRequest(reason="test stopping")
        request.grace.CopyFrom(duration_pb2.Duration(nanos=int(grace % 1 * 1e9), seconds=int(grace)))
        self.stub.Shutdown(request, metadata=self.metadata, timeout=5)
        return self.process.wait(timeout=grace + 1 if wait is None else wait)

    def stderr(self) -> str:
        """What the plugin wrote on stderr, once it has exited."""
        assert self.process.stderr is not None
        return self.process.stderr.read().decode(errors="replace")

    def close(self) -> None:
        """Kills the process group if it still runs; removes the directory."""
        import os
        import shutil
        import signal

        channel = getattr(self, "channel", None)
        if channel is not None:
            channel.close()
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RunningPlugin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        if self.process.stderr is not None:
            self.process.stderr.close()


def _read_answer(answer: Any, context: dict[str, Any]) -> Invoked:
    """An ``InvokeResponse`` as an :class:`Invoked`, its patch applied with the host's rules."""
    from ._proto import plugin_pb2
    from .jsonvalue import value_to_python
    from .patch import PatchOp

    reply = Reply.abort(answer.message) if answer.outcome == plugin_pb2.OUTCOME_ABORT else Reply.ok().with_message(answer.message)
    ops = []
    for op in answer.patch:
        if op.op == plugin_pb2.PATCH_OP_SET:
            ops.append(PatchOp("set", op.path, value_to_python(op.value)))
            reply.set(op.path, value_to_python(op.value))
        elif op.op == plugin_pb2.PATCH_OP_REMOVE:
            ops.append(PatchOp("remove", op.path))
            reply.remove(op.path)
        else:
            raise Failed(f"the plugin answered an unknown patch operation {op.op} at {op.path}")
    if reply.outcome is Outcome.ABORT:
        return Invoked(reply, context)
    try:
        return Invoked(reply, apply(context, ops))
    except PatchError as e:
        raise Failed(f"the host would refuse the patch: {e}") from None

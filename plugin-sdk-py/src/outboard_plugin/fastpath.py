"""The invoke fast path (feature ``invoke-fastpath/1``, PROTOCOL.md §18):
``Invoke`` as length-prefixed protobuf frames on a second Unix socket,
multiplexed by call id, beside the gRPC server that keeps serving
everything else.

A frame is a 16-byte header (payload length ``u32``, kind ``u8``, 3 reserved
bytes, call id ``u64``, all big-endian) and a protobuf payload. The host
opens a connection, sends ``HELLO`` with the launch token and, once
answered, any number of ``INVOKE`` frames; each call runs in its own task
and is answered once, in whatever order the calls finish, with ``RESULT``
or ``ERROR``; ``CANCEL`` cancels it and nothing is sent for it.

The answers are :meth:`PluginServicer.answer`'s, the very code the gRPC
``Invoke`` runs: only the delivery differs (a frame instead of a status).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import socket
import struct
import time
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import DecodeError

from ._proto import plugin_pb2

if TYPE_CHECKING:
    from .service import PluginServicer

log = logging.getLogger("outboard_plugin")

#: The manifest feature a plugin lists when it serves the fast path.
FEATURE = "invoke-fastpath/1"
#: The fast path's version, sent in both ``HELLO`` frames.
VERSION = 1
#: A frame's header: payload length, kind, 3 reserved bytes (zero), call id.
HEADER = struct.Struct(">IB3xQ")
#: The largest payload either side accepts (gRPC's default largest message).
MAX_PAYLOAD = 4 * 1024 * 1024
#: How long a new connection has to send its ``HELLO`` (seconds).
HELLO_WITHIN = 10.0
#: The longest ``HELLO`` payload read: a token and a version take far less,
#: and a peer that has not shown the token gets no larger buffer.
HELLO_MAX = 4096

HELLO = 1
INVOKE = 2
RESULT = 3
ERROR = 4
CANCEL = 5
_KIND_NAMES = {HELLO: "HELLO", INVOKE: "INVOKE", RESULT: "RESULT", ERROR: "ERROR", CANCEL: "CANCEL"}

_pack = HEADER.pack
_unpack_from = HEADER.unpack_from
_HEADER_LEN = HEADER.size


def frame(kind: int, ident: int, payload: bytes) -> bytes:
    """A whole frame: the header, then ``payload``."""
    return _pack(len(payload), kind, ident) + payload


def error_frame(ident: int, code: grpc.StatusCode, message: str) -> bytes:
    """An ``ERROR`` frame for call ``ident`` failing with ``code`` and ``message``."""
    payload = plugin_pb2.FastpathError(code=code.value[0], message=message).SerializeToString()
    return frame(ERROR, ident, payload)


class FastpathServer:
    """The fast path's listener and its connections, answering with a
    :class:`~outboard_plugin.service.PluginServicer`."""

    def __init__(self, servicer: PluginServicer, token: str, name: str) -> None:
        self._servicer = servicer
        self._token = token.encode()
        #: The plugin's name, in the messages of the errors it answers.
        self.name = name
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[_Connection] = set()
        #: ``True`` once the plugin is stopping: new calls are refused.
        self.stopping = False

    async def start(self, path: str) -> None:
        """Binds ``path``, makes it 0600 and only then listens, so that no
        one connects through wider permissions in between. Raises
        ``OSError`` if it cannot (the file is removed if it was made)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bound = False
        try:
            sock.bind(path)
            bound = True
            os.chmod(path, 0o600)
            self._server = await asyncio.get_running_loop().create_unix_server(
                lambda: _Connection(self), sock=sock, backlog=16
            )
        except BaseException:
            sock.close()
            if bound:
                _unlink(path)
            raise

    def refuse_new_calls(self) -> None:
        """The plugin is stopping: no new connections, a new ``INVOKE`` is
        answered ``UNAVAILABLE``, calls in flight go on, and each connection
        closes once its last call is answered (at once if it has none)."""
        self.stopping = True
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            if not connection.calls:
                connection.close()

    async def drain(self) -> None:
        """Returns once every call in flight is over (new ones being
        refused, this ends when the slowest call does)."""
        while True:
            tasks = [task for c in self._connections for task in c.calls.values()]
            if not tasks:
                return
            await asyncio.wait(tasks)

    def close(self) -> None:
        """Stops listening and closes every connection (what was written
        is still sent); calls still running are cancelled."""
        self.refuse_new_calls()
        for connection in list(self._connections):
            connection.close()


class _Connection(asyncio.Protocol):
    """One connection from the host: the frames in, one task per call, the
    answers out (each frame in one ``transport.write``)."""

    def __init__(self, server: FastpathServer) -> None:
        self._server = server
        self._servicer = server._servicer
        self._transport: asyncio.Transport | None = None
        #: Bytes received and not yet a whole frame.
        self._buffer = bytearray()
        #: Bytes of an over-size payload still to read and drop.
        self._discard = 0
        #: ``True`` once the host's ``HELLO`` carried the token.
        self._greeted = False
        #: ``True`` once the connection is closing: nothing more is read or written.
        self._closing = False
        #: The calls in flight by id: the task answering each.
        self.calls: dict[int, asyncio.Task[None]] = {}
        #: Closes the connection if no HELLO comes in time.
        self._hello_timer: asyncio.TimerHandle | None = None

    # --- the connection --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server._connections.add(self)
        self._hello_timer = asyncio.get_running_loop().call_later(HELLO_WITHIN, self._no_hello)

    def connection_lost(self, exc: Exception | None) -> None:
        # The host went away (or the plugin is exiting): nobody waits for
        # the answers, so the calls stop.
        self._closing = True
        self._server._connections.discard(self)
        if self._hello_timer is not None:
            self._hello_timer.cancel()
        for task in self.calls.values():
            task.cancel()
        self.calls.clear()

    # A host that does not read its answers is not sent more calls' worth:
    # reading stops while the transport's write buffer is over its limit.
    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._closing:
            self._transport.resume_reading()

    def close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def _write(self, data: bytes) -> None:
        if not self._closing and self._transport is not None:
            self._transport.write(data)

    def _refuse(self, ident: int, code: grpc.StatusCode, message: str) -> None:
        """Answers frame ``ident`` with an ``ERROR``; an ``ERROR`` for id 0
        is about the connection, which then closes."""
        self._write(error_frame(ident, code, message))
        if ident == 0:
            log.warning("fast-path connection refused", extra={"error": message})
            self.close()
        else:
            log.warning("fast-path frame refused", extra={"call_id": ident, "error": message})

    # --- reading frames --------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        buffer: bytes | bytearray = data
        if self._buffer:
            self._buffer += data
            buffer = self._buffer
        end = len(buffer)
        pos = 0
        # Each payload is copied once, out of the view (the handlers below
        # never touch the buffer, so it can be viewed meanwhile).
        with memoryview(buffer) as view:
            while not self._closing:
                if self._discard:
                    skipped = min(self._discard, end - pos)
                    self._discard -= skipped
                    pos += skipped
                    if self._discard:
                        break
                if end - pos < _HEADER_LEN:
                    break
                length, kind, ident = _unpack_from(view, pos)
                if not self._greeted and (kind != HELLO or length > HELLO_MAX):
                    # Refused on its header: its payload is never read.
                    self._refuse(0, grpc.StatusCode.UNAUTHENTICATED, _not_a_hello(kind, length))
                    break
                if length > MAX_PAYLOAD:
                    pos += _HEADER_LEN
                    self._over_size(length, kind, ident)
                    continue
                stop = pos + _HEADER_LEN + length
                if stop > end:
                    break
                payload = bytes(view[pos + _HEADER_LEN : stop])
                pos = stop
                if self._greeted:
                    self._frame(kind, ident, payload)
                else:
                    self._hello(payload)
        if buffer is self._buffer:
            del self._buffer[:pos]
        elif pos < end and not self._closing:
            self._buffer += data[pos:]

    def _over_size(self, length: int, kind: int, ident: int) -> None:
        # The payload is read and dropped as it comes; the connection goes on.
        self._discard = length
        self._refuse(
            ident, grpc.StatusCode.RESOURCE_EXHAUSTED, f"frame of {length} bytes is over the {MAX_PAYLOAD}-byte limit"
        )

    def _hello(self, payload: bytes) -> None:
        """The connection's first frame, a ``HELLO`` (its header checked):
        answered with the plugin's if it carries the launch token; else the
        connection closes."""
        try:
            hello = plugin_pb2.FastpathHello.FromString(payload)
        except DecodeError as e:
            problem = f"malformed frame: the HELLO does not decode: {e}"
        else:
            # The same constant-time comparison as the gRPC token check.
            if hmac.compare_digest(hello.token.encode(), self._server._token):
                self._greeted = True
                if self._hello_timer is not None:
                    self._hello_timer.cancel()
                reply = plugin_pb2.FastpathHello(token="", version=VERSION).SerializeToString()
                self._write(frame(HELLO, 0, reply))
                return
            problem = "wrong token in the HELLO: it is not this launch's OUTBOARD_TOKEN"
        self._refuse(0, grpc.StatusCode.UNAUTHENTICATED, problem)

    def _no_hello(self) -> None:
        if not self._greeted:
            self._refuse(0, grpc.StatusCode.UNAUTHENTICATED, f"no HELLO within {HELLO_WITHIN:g} s")

    def _frame(self, kind: int, ident: int, payload: bytes) -> None:
        if kind == INVOKE:
            self._invoke(ident, payload)
        elif kind == CANCEL:
            # Unknown ids are ignored: the call may have just been answered.
            task = self.calls.pop(ident, None)
            if task is not None:
                task.cancel()
                self._close_if_done()
        elif kind == HELLO:
            self._refuse(ident, grpc.StatusCode.INVALID_ARGUMENT, "HELLO is only the connection's first frame")
        elif kind in _KIND_NAMES:
            self._refuse(ident, grpc.StatusCode.INVALID_ARGUMENT, f"{_KIND_NAMES[kind]} frames go from the plugin to the host")
        else:
            self._refuse(
                ident, grpc.StatusCode.UNIMPLEMENTED, f"unknown frame kind {kind}: this plugin speaks {FEATURE}"
            )

    def _invoke(self, ident: int, payload: bytes) -> None:
        received = time.time()
        if ident == 0:
            self._refuse(
                0, grpc.StatusCode.INVALID_ARGUMENT, "INVOKE with call id 0: call ids start at 1; closing the connection"
            )
            return
        try:
            invoke = plugin_pb2.FastpathInvoke.FromString(payload)
        except DecodeError as e:
            self._refuse(
                ident, grpc.StatusCode.INVALID_ARGUMENT, f"malformed frame: the INVOKE payload is not a FastpathInvoke: {e}"
            )
            return
        if not invoke.HasField("request"):
            self._refuse(ident, grpc.StatusCode.INVALID_ARGUMENT, "malformed frame: the FastpathInvoke has no request")
            return
        if self._server.stopping:
            self._refuse(ident, grpc.StatusCode.UNAVAILABLE, f"{self._server.name} is shutting down and takes no new calls")
            self._close_if_done()
            return
        if ident in self.calls:
            self._refuse(ident, grpc.StatusCode.INVALID_ARGUMENT, f"call id {ident} is already in flight on this connection")
            return
        # The timeout counts from the frame's arrival, as gRPC's from the
        # call's; a negative one has already run out.
        timeout_at = received + invoke.timeout.ToNanoseconds() / 1e9 if invoke.HasField("timeout") else None
        self.calls[ident] = asyncio.get_running_loop().create_task(self._call(ident, invoke.request, timeout_at))

    # --- answering -------------------------------------------------------------

    async def _call(self, ident: int, request: plugin_pb2.InvokeRequest, timeout_at: float | None) -> None:
        """Answers call ``ident``; a ``CANCEL`` (or the connection's end)
        cancels this task, and then nothing is sent."""
        try:
            outcome: Any = await self._servicer.answer(request, timeout_at)
        except Exception as e:
            # What grpc.aio answers when a handler raises.
            log.error("invoke raised", exc_info=e)
            outcome = (grpc.StatusCode.UNKNOWN, f"Unexpected {type(e)}: {e}")
        finally:
            calls = self.calls
            if calls.get(ident) is asyncio.current_task():
                del calls[ident]
        if type(outcome) is tuple:
            self._write(error_frame(ident, *outcome))
        else:
            payload = outcome.SerializeToString()
            if len(payload) <= MAX_PAYLOAD:
                self._write(_pack(len(payload), RESULT, ident) + payload)
            else:
                message = f"the plugin's answer of {len(payload)} bytes is over the {MAX_PAYLOAD}-byte frame limit"
                log.error("answer too large", extra={"error": message})
                self._write(error_frame(ident, grpc.StatusCode.RESOURCE_EXHAUSTED, message))
        self._close_if_done()

    def _close_if_done(self) -> None:
        """Closes the connection if the plugin is stopping and its last
        call has been answered (PROTOCOL.md §18.7)."""
        if self._server.stopping and not self.calls:
            self.close()


def _not_a_hello(kind: int, length: int) -> str:
    """Why a first frame with this header is not a ``HELLO`` worth reading."""
    if kind != HELLO:
        return f"the first frame must be a HELLO carrying OUTBOARD_TOKEN, not {_kind_name(kind)}"
    return f"a HELLO of {length} bytes is over the {HELLO_MAX}-byte limit for a HELLO"


def _kind_name(kind: int) -> str:
    """A frame kind as the messages name it."""
    return _KIND_NAMES.get(kind) or f"a frame of unknown kind {kind}"


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass

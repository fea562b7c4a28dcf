"""A raw client of the invoke fast path (PROTOCOL.md §18) for the tests:
frames built and read byte by byte, nothing from the SDK's own server."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from google.protobuf import duration_pb2

from outboard_plugin._proto import plugin_pb2

HEADER = struct.Struct(">IB3xQ")
HELLO, INVOKE, RESULT, ERROR, CANCEL = 1, 2, 3, 4, 5
MAX_PAYLOAD = 4 * 1024 * 1024


@dataclass
class Frame:
    kind: int
    id: int
    payload: bytes

    def result(self) -> plugin_pb2.InvokeResponse:
        assert self.kind == RESULT, f"expected RESULT for call {self.id}, got {self}"
        return plugin_pb2.InvokeResponse.FromString(self.payload)

    def error(self) -> plugin_pb2.FastpathError:
        assert self.kind == ERROR, f"expected ERROR for call {self.id}, got {self}"
        return plugin_pb2.FastpathError.FromString(self.payload)

    def __repr__(self) -> str:
        if self.kind == ERROR:
            error = plugin_pb2.FastpathError.FromString(self.payload)
            return f"Frame(ERROR, id={self.id}, code={error.code}, message={error.message!r})"
        return f"Frame(kind={self.kind}, id={self.id}, {len(self.payload)} bytes)"


class FastClient:
    """One connection to a plugin's fast-path socket (blocking, every read
    bounded by ``timeout`` seconds)."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> FastClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, kind: int, ident: int, payload: bytes = b"", *, length: int | None = None) -> None:
        """Sends a frame; ``length`` overrides the header's payload length."""
        self.sock.sendall(HEADER.pack(len(payload) if length is None else length, kind, ident) + payload)

    def hello(self, token: str) -> Frame:
        """Sends HELLO with ``token`` and reads the answer."""
        self.send(HELLO, 0, plugin_pb2.FastpathHello(token=token, version=1).SerializeToString())
        return self.read()

    def greeted(self, token: str) -> FastClient:
        answer = self.hello(token)
        assert answer.kind == HELLO and answer.id == 0, answer
        return self

    def invoke(self, ident: int, request: plugin_pb2.InvokeRequest, timeout: float | None = None) -> None:
        message = plugin_pb2.FastpathInvoke(request=request)
        if timeout is not None:
            message.timeout.CopyFrom(duration_pb2.Duration(seconds=int(timeout), nanos=int(timeout % 1 * 1e9)))
        self.send(INVOKE, ident, message.SerializeToString())

    def call(self, ident: int, request: plugin_pb2.InvokeRequest, timeout: float | None = None) -> Frame:
        """Sends one call and reads the next frame (its answer when nothing else is in flight)."""
        self.invoke(ident, request, timeout)
        answer = self.read()
        assert answer.id == ident, answer
        return answer

    def cancel(self, ident: int) -> None:
        self.send(CANCEL, ident)

    def read(self) -> Frame:
        """The next frame; fails on end of file."""
        frame = self.read_or_eof()
        assert frame is not None, "the plugin closed the connection"
        return frame

    def read_or_eof(self) -> Frame | None:
        """The next frame, or ``None`` at end of file."""
        head = self._exactly(HEADER.size)
        if head is None:
            return None
        length, kind, ident = HEADER.unpack(head)
        assert length <= MAX_PAYLOAD, f"the plugin sent a frame of {length} bytes"
        payload = self._exactly(length) if length else b""
        assert payload is not None, "the connection closed in the middle of a frame"
        return Frame(kind, ident, payload)

    def read_to_eof(self) -> list[Frame]:
        """Every frame until the plugin closes the connection. A close with
        frames of ours still unread on the plugin's side reaches us as a
        reset (Linux), after what it sent: that is a close too."""
        frames = []
        try:
            while (frame := self.read_or_eof()) is not None:
                frames.append(frame)
        except ConnectionResetError:
            pass
        return frames

    def _exactly(self, n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                assert not data, "the connection closed in the middle of a frame"
                return None
            data += chunk
        return data

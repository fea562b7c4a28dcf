"""The invoke fast path (PROTOCOL.md §18) as a host sees it: the sample
plugins (a plain ``def invoke`` and an ``async def`` one) started as real
processes with ``OUTBOARD_FASTPATH_SOCKET``, driven with raw frames over
the socket and compared with their gRPC answers."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2

from outboard_plugin import Manifest, Plugin, Reply
from outboard_plugin._proto import plugin_pb2
from outboard_plugin.fastpath import FEATURE
from outboard_plugin.health import Health
from outboard_plugin.service import PluginServicer
from outboard_plugin.settings import Settings
from outboard_plugin.testing import RunningPlugin

from .conftest import SAMPLE, host_env, wait_for_file
from .fastclient import CANCEL, ERROR, HELLO, INVOKE, MAX_PAYLOAD, RESULT, FastClient, Frame
from .test_process import JOB, invoke_request

SAMPLE_ASYNC = SAMPLE.with_name("sample_async.py")

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED.value[0]
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]
DEADLINE_EXCEEDED = grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
UNIMPLEMENTED = grpc.StatusCode.UNIMPLEMENTED.value[0]
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE.value[0]


@pytest.fixture(params=["def", "async def"])
def fast(request: pytest.FixtureRequest) -> Iterator[RunningPlugin]:
    """The sample plugin (plain ``def invoke``, then ``async def``), offered
    the fast path, started and past its handshake."""
    script = SAMPLE if request.param == "def" else SAMPLE_ASYNC
    with RunningPlugin([sys.executable, str(script)], fastpath=True) as plugin:
        yield plugin


def connect(plugin: RunningPlugin) -> FastClient:
    """A connection to ``plugin``'s fast path, past HELLO."""
    assert plugin.fastpath_socket is not None
    return FastClient(plugin.fastpath_socket).greeted(plugin.token)


def job(user: str, **sample: Any) -> plugin_pb2.InvokeRequest:
    """A ``pre_container`` call for ``user`` (no deadline in the message),
    with ``sample`` as the sample plugin's instructions."""
    context: dict[str, Any] = {**JOB, "env": {"USER": user}}
    if sample:
        context["metadata"] = {"sample": sample}
    return invoke_request(context, deadline_in=None)


def greeting(frame: Frame) -> str:
    [op] = frame.result().patch
    assert op.path == "/env/GREETING"
    return op.value.string_value


# --- the offer -----------------------------------------------------------------


def test_the_socket_is_0600_before_the_handshake_and_the_manifest_lists_the_feature(fast: RunningPlugin) -> None:
    assert fast.fastpath_socket is not None
    # RunningPlugin returns as soon as the handshake line is read.
    mode = os.stat(fast.fastpath_socket).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600
    assert FEATURE in fast.describe().features


def test_without_the_variable_nothing_is_bound_and_the_feature_is_not_listed(sample: RunningPlugin) -> None:
    assert FEATURE not in sample.describe().features
    assert os.listdir(sample.directory) == ["plugin.sock"]


def test_a_plugin_that_declines_the_fast_path_stays_on_grpc() -> None:
    with RunningPlugin([sys.executable, str(SAMPLE)], fastpath=True, env={"SAMPLE_FASTPATH": "off"}) as plugin:
        assert FEATURE not in plugin.describe().features
        assert os.listdir(plugin.directory) == ["plugin.sock"]
        assert plugin.invoke("pre_container", JOB).context["env"]["GREETING"] == "hello, ada"


class Listed(Plugin):
    def manifest(self) -> Manifest:
        return Manifest("listed", "0.1.0").subscribe("pre_container", 5).feature(FEATURE).feature("other/1")

    def invoke(self, invocation: Any) -> Reply:
        return Reply.ok()


@pytest.mark.parametrize("serving", [False, True])
def test_the_sdk_alone_decides_whether_the_manifest_lists_the_feature(serving: bool) -> None:
    import asyncio

    plugin = Listed()
    servicer = PluginServicer(plugin, plugin.manifest(), 1, Health(), None, lambda grace, reason: None, fastpath=serving)
    described = asyncio.run(servicer.Describe(plugin_pb2.DescribeRequest(), None))  # type: ignore[arg-type]
    assert list(described.manifest.features) == (["other/1", FEATURE] if serving else ["other/1"])


def test_settings_read_the_offer_and_the_switch() -> None:
    env = host_env("/run/p/plugin.sock", "t0ken")
    assert Settings.from_env(env).fastpath_socket is None
    assert not Settings.from_env(env).serves_fastpath
    env["OUTBOARD_FASTPATH_SOCKET"] = "/run/p/fast.sock"
    settings = Settings.from_env(env)
    assert (settings.fastpath_socket, settings.serves_fastpath) == ("/run/p/fast.sock", True)
    assert not Settings(socket_path="/s", token="t", fastpath_socket="/f", fastpath=False).serves_fastpath


def test_a_fast_path_socket_that_cannot_be_bound_is_named_and_exits_1(runtime_dir: str) -> None:
    env = host_env(os.path.join(runtime_dir, "plugin.sock"), "t0ken")
    env["OUTBOARD_FASTPATH_SOCKET"] = os.path.join(runtime_dir, "missing", "fast.sock")
    out = subprocess.run([sys.executable, str(SAMPLE)], env=env, capture_output=True, timeout=20)
    assert (out.returncode, out.stdout) == (1, b"")
    assert out.stderr.decode().splitlines()[-1] == (
        f"sample: cannot bind the fast-path socket {runtime_dir}/missing/fast.sock: "
        f"the directory {runtime_dir}/missing does not exist"
    )
    # The gRPC socket, bound first, is gone too.
    assert os.listdir(runtime_dir) == []


# --- HELLO ---------------------------------------------------------------------


def test_hello_with_the_token_is_answered_with_the_plugins_hello(fast: RunningPlugin) -> None:
    assert fast.fastpath_socket is not None
    with FastClient(fast.fastpath_socket) as client:
        answer = client.hello(fast.token)
        assert (answer.kind, answer.id) == (HELLO, 0)
        hello = plugin_pb2.FastpathHello.FromString(answer.payload)
        assert (hello.token, hello.version) == ("", 1)


@pytest.mark.parametrize(
    "first, says",
    [
        (
            (HELLO, 0, plugin_pb2.FastpathHello(token="nope", version=1).SerializeToString()),
            "wrong token in the HELLO: it is not this launch's OUTBOARD_TOKEN",
        ),
        (
            (HELLO, 0, plugin_pb2.FastpathHello(version=1).SerializeToString()),
            "wrong token in the HELLO: it is not this launch's OUTBOARD_TOKEN",
        ),
        ((HELLO, 0, b"\xff\xff"), "malformed frame: the HELLO does not decode: "),
        (
            (INVOKE, 1, plugin_pb2.FastpathInvoke().SerializeToString()),
            "the first frame must be a HELLO carrying OUTBOARD_TOKEN, not INVOKE",
        ),
    ],
)
def test_anything_but_hello_with_the_token_is_unauthenticated_and_closes(first: tuple[int, int, bytes], says: str) -> None:
    with RunningPlugin([sys.executable, str(SAMPLE)], fastpath=True) as plugin:
        assert plugin.fastpath_socket is not None
        with FastClient(plugin.fastpath_socket) as client:
            client.send(*first)
            # An INVOKE after it is not answered: the connection is closed,
            # perhaps already (then the INVOKE cannot even be sent).
            try:
                client.invoke(2, job("ada"))
            except (BrokenPipeError, ConnectionResetError):
                pass
            [refused] = client.read_to_eof()
        assert refused.id == 0
        error = refused.error()
        assert error.code == UNAUTHENTICATED
        assert error.message.startswith(says), error.message
        # The plugin goes on serving whoever has the token.
        with connect(plugin) as client:
            assert greeting(client.call(1, job("ada"))) == "hello, ada"


@pytest.mark.parametrize(
    "kind, length, says",
    [
        (HELLO, MAX_PAYLOAD + 1, "a HELLO of 4194305 bytes is over the 4096-byte limit for a HELLO"),
        (HELLO, 4097, "a HELLO of 4097 bytes is over the 4096-byte limit for a HELLO"),
        (INVOKE, 100, "the first frame must be a HELLO carrying OUTBOARD_TOKEN, not INVOKE"),
        (9, 0, "the first frame must be a HELLO carrying OUTBOARD_TOKEN, not a frame of unknown kind 9"),
    ],
)
def test_a_first_frame_is_refused_on_its_header_before_its_payload_is_sent(
    fast: RunningPlugin, kind: int, length: int, says: str
) -> None:
    assert fast.fastpath_socket is not None
    with FastClient(fast.fastpath_socket) as client:
        # The header alone: the plugin does not wait for the payload.
        client.send(kind, 0, length=length)
        [refused] = client.read_to_eof()
    assert (refused.id, refused.error().code, refused.error().message) == (0, UNAUTHENTICATED, says)


# --- calls ---------------------------------------------------------------------


def test_answers_are_the_grpc_answers(fast: RunningPlugin) -> None:
    fast.configure({"greeting": "hi"})
    requests = [
        job("ada"),
        job("ada", abort="not today"),
        job("ada", fail="no /env"),
        # No handler for an event the manifest does not subscribe to.
        plugin_pb2.InvokeRequest(phase="event:job.done", invocation_id="e1", attempt=1),
        # Expired when it arrives.
        invoke_request(JOB, deadline_in=-1),
    ]
    with connect(fast) as client:
        for ident, request in enumerate(requests, start=1):
            over_fast = client.call(ident, request)
            try:
                over_grpc = fast.stub.Invoke(request, metadata=fast.metadata, timeout=5)
            except grpc.RpcError as e:
                error = over_fast.error()
                assert (error.code, error.message) == (e.code().value[0], e.details()), request  # type: ignore[attr-defined]
            else:
                assert over_fast.result() == over_grpc, request


def test_32_calls_in_flight_are_answered_once_each_in_the_order_they_finish(fast: RunningPlugin, tmp_path: Path) -> None:
    release = tmp_path / "release"
    started = tmp_path / "started"
    with connect(fast) as client:
        # Call 1 waits for the test; the 31 others are sent behind it.
        client.invoke(1, job("first", wait_for=str(release), started=str(started)))
        wait_for_file(started)
        for ident in range(2, 33):
            client.invoke(ident, job(f"user{ident}"))
        answers = {}
        for _ in range(31):
            frame = client.read()
            assert frame.id not in answers, f"call {frame.id} answered twice"
            answers[frame.id] = greeting(frame)
        assert answers == {ident: f"hello, user{ident}" for ident in range(2, 33)}
        release.touch()
        last = client.read()
        assert last.id == 1
        assert last.result().outcome == plugin_pb2.OUTCOME_CONTINUE


def test_frames_split_anywhere_are_read_whole(fast: RunningPlugin) -> None:
    assert fast.fastpath_socket is not None
    hello = plugin_pb2.FastpathHello(token=fast.token, version=1).SerializeToString()
    invoke = plugin_pb2.FastpathInvoke(request=job("ada")).SerializeToString()
    from .fastclient import HEADER

    data = HEADER.pack(len(hello), HELLO, 0) + hello + HEADER.pack(len(invoke), INVOKE, 5) + invoke
    with FastClient(fast.fastpath_socket) as client:
        for byte in data:
            client.sock.sendall(bytes([byte]))
        assert client.read().kind == HELLO
        assert greeting(client.read()) == "hello, ada"
        # And many frames in one write.
        batch = b"".join(HEADER.pack(len(invoke), INVOKE, ident) + invoke for ident in range(10, 20))
        client.sock.sendall(batch)
        assert sorted(client.read().id for _ in range(10)) == list(range(10, 20))


def test_the_deadline_is_the_earlier_of_the_frames_timeout_and_the_requests(fast: RunningPlugin) -> None:
    with connect(fast) as client:
        # The frame's timeout, counted from its arrival.
        started = time.monotonic()
        slow = job("ada", sleep=3)
        cut = client.call(1, slow, timeout=0.2).error()
        assert time.monotonic() - started < 2.5
        assert cut.code == DEADLINE_EXCEEDED
        assert cut.message.startswith("sample did not finish phase 'pre_container' before the deadline (cancelled after ")
        # The request's deadline, earlier than the frame's timeout.
        slow = invoke_request({**JOB, "metadata": {"sample": {"sleep": 3}}}, deadline_in=0.2)
        assert client.call(2, slow, timeout=60).error().code == DEADLINE_EXCEEDED
        # Already over on arrival: refused without running the plugin.
        expired = client.call(3, job("ada"), timeout=0).error()
        assert (expired.code, expired.message) == (
            DEADLINE_EXCEEDED,
            "sample: the deadline of the call for phase 'pre_container' had passed when it arrived",
        )
        # And the plugin still answers.
        assert greeting(client.call(4, job("ada"), timeout=5)) == "hello, ada"


def test_cancel_stops_the_call_and_nothing_is_sent_for_it(fast: RunningPlugin, tmp_path: Path) -> None:
    release, started, cancelled, finished = (tmp_path / n for n in ("release", "started", "cancelled", "finished"))
    is_async = "sample_async" in fast.process.args[1]  # type: ignore[index]
    with connect(fast) as client:
        client.invoke(
            7,
            job("ada", wait_for=str(release), started=str(started), cancelled=str(cancelled), finished=str(finished)),
        )
        wait_for_file(started)
        client.cancel(7)
        # A CANCEL for a call that is not in flight is ignored.
        client.cancel(99)
        if is_async:
            # The plugin's coroutine was cancelled.
            wait_for_file(cancelled)
        else:
            # A thread cannot be cancelled: it runs to its end, unanswered.
            release.touch()
            wait_for_file(finished)
        assert greeting(client.call(8, job("bob"))) == "hello, bob"
        # Everything the plugin still sends, up to its exit: nothing for 7 or 99.
        fast.stub.Shutdown(plugin_pb2.ShutdownRequest(grace=duration_pb2.Duration(seconds=1)), metadata=fast.metadata, timeout=5)
        assert client.read_to_eof() == []
    assert fast.process.wait(timeout=5) == 0


def test_the_host_closing_the_connection_cancels_its_calls() -> None:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="obt-", dir="/tmp") as tmp, RunningPlugin(
        [sys.executable, str(SAMPLE_ASYNC)], fastpath=True
    ) as plugin:
        started, cancelled = os.path.join(tmp, "started"), os.path.join(tmp, "cancelled")
        with connect(plugin) as client:
            client.invoke(1, job("ada", sleep=30, started=started, cancelled=cancelled))
            wait_for_file(Path(started))
        wait_for_file(Path(cancelled))
        with connect(plugin) as client:
            assert greeting(client.call(1, job("ada"))) == "hello, ada"


# --- bad frames ------------------------------------------------------------------


def test_bad_frames_are_answered_with_errors_and_the_connection_goes_on(fast: RunningPlugin, tmp_path: Path) -> None:
    release, started = tmp_path / "release", tmp_path / "started"
    with connect(fast) as client:
        client.send(INVOKE, 5, b"\x0a\x05\xff\xff")
        malformed = client.read()
        assert (malformed.id, malformed.error().code) == (5, INVALID_ARGUMENT)
        assert malformed.error().message.startswith("malformed frame: "), malformed

        client.send(9, 6, b"whatever")
        unknown = client.read()
        assert (unknown.id, unknown.error().code) == (6, UNIMPLEMENTED)
        assert unknown.error().message == "unknown frame kind 9: this plugin speaks invoke-fastpath/1"
        client.send(RESULT, 6, b"")
        backwards = client.read().error()
        assert (backwards.code, backwards.message) == (INVALID_ARGUMENT, "RESULT frames go from the plugin to the host")

        client.send(INVOKE, 4, plugin_pb2.FastpathInvoke().SerializeToString())
        empty = client.read().error()
        assert (empty.code, empty.message) == (INVALID_ARGUMENT, "malformed frame: the FastpathInvoke has no request")

        # Over the limit: read and dropped, then the next frame is read as a frame.
        client.send(INVOKE, 7, b"\0" * (MAX_PAYLOAD + 1))
        client.invoke(8, job("ada"))
        too_long = client.read()
        assert (too_long.id, too_long.error().code) == (7, RESOURCE_EXHAUSTED)
        assert too_long.error().message == "frame of 4194305 bytes is over the 4194304-byte limit"
        assert greeting(client.read()) == "hello, ada"

        # An id already in flight.
        client.invoke(10, job("ada", wait_for=str(release), started=str(started)))
        wait_for_file(started)
        client.invoke(10, job("bob"))
        twice = client.read()
        assert (twice.id, twice.error().code) == (10, INVALID_ARGUMENT)
        assert twice.error().message == "call id 10 is already in flight on this connection"
        release.touch()
        assert client.read().id == 10

        assert greeting(client.call(11, job("cy"))) == "hello, cy"

        # Call id 0 is the connection's: refused, and the connection closes.
        client.invoke(0, job("ada"))
        [refused] = client.read_to_eof()
        assert (refused.id, refused.error().code) == (0, INVALID_ARGUMENT)
        assert refused.error().message == "INVOKE with call id 0: call ids start at 1; closing the connection"

    # None of it hurt the plugin.
    with connect(fast) as client:
        assert greeting(client.call(1, job("ada"))) == "hello, ada"
    assert fast.process.poll() is None


# --- stopping --------------------------------------------------------------------


def test_a_graceful_stop_lets_calls_finish_refuses_new_ones_and_cancels_the_rest(
    fast: RunningPlugin, tmp_path: Path
) -> None:
    quick, stuck = tmp_path / "quick", tmp_path / "stuck"
    with connect(fast) as client:
        client.invoke(1, job("ada", sleep=0.5, started=str(quick)))
        client.invoke(2, job("ada", sleep=30, started=str(stuck)))
        wait_for_file(quick)
        wait_for_file(stuck)
        request = plugin_pb2.ShutdownRequest(grace=duration_pb2.Duration(seconds=2))
        fast.stub.Shutdown(request, metadata=fast.metadata, timeout=5)
        # Sent after the Shutdown call was answered: refused.
        client.invoke(3, job("bob"))
        frames = {frame.id: frame for frame in client.read_to_eof()}
    assert sorted(frames) == [1, 2, 3]
    assert frames[1].result().outcome == plugin_pb2.OUTCOME_CONTINUE
    assert (frames[2].error().code, frames[2].error().message) == (
        UNAVAILABLE,
        "sample is shutting down and cancelled the call for phase 'pre_container' when the grace period ran out",
    )
    assert (frames[3].error().code, frames[3].error().message) == (UNAVAILABLE, "sample is shutting down and takes no new calls")
    assert fast.process.wait(timeout=3) == 0
    assert os.listdir(fast.directory) == []


def test_when_stopping_each_connection_closes_once_its_last_call_is_answered(fast: RunningPlugin, tmp_path: Path) -> None:
    release, started = tmp_path / "release", tmp_path / "started"
    with connect(fast) as busy, connect(fast) as idle:
        busy.invoke(1, job("ada", wait_for=str(release), started=str(started)))
        wait_for_file(started)
        request = plugin_pb2.ShutdownRequest(grace=duration_pb2.Duration(seconds=30))
        fast.stub.Shutdown(request, metadata=fast.metadata, timeout=5)
        # The idle connection closes at once, while the plugin still runs
        # (it waits for call 1, which waits for the test).
        assert idle.read_to_eof() == []
        assert fast.process.poll() is None
        release.touch()
        [answer] = busy.read_to_eof()
        assert answer.id == 1 and answer.kind == RESULT
    assert fast.process.wait(timeout=10) == 0


def test_sigterm_stops_and_removes_both_sockets(fast: RunningPlugin) -> None:
    with connect(fast) as client:
        assert greeting(client.call(1, job("ada"))) == "hello, ada"
        os.killpg(fast.process.pid, signal.SIGTERM)
        assert client.read_to_eof() == []
    assert fast.process.wait(timeout=3) == 0
    assert os.listdir(fast.directory) == []



# --- in process ----------------------------------------------------------------


def test_a_connection_without_hello_is_closed_after_a_while(runtime_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from outboard_plugin import fastpath

    monkeypatch.setattr(fastpath, "HELLO_WITHIN", 0.1)
    plugin = Listed()
    servicer = PluginServicer(plugin, plugin.manifest(), 1, Health(), None, lambda grace, reason: None, fastpath=True)
    path = os.path.join(runtime_dir, "fast.sock")

    async def silent_client() -> bytes:
        server = fastpath.FastpathServer(servicer, "t0ken", "listed")
        await server.start(path)
        try:
            reader, writer = await asyncio.open_unix_connection(path)
            # Nothing sent: the plugin gives up, says why, and closes.
            data = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            return data
        finally:
            server.close()

    data = asyncio.run(silent_client())
    from .fastclient import HEADER

    length, kind, ident = HEADER.unpack_from(data)
    assert (kind, ident, len(data)) == (ERROR, 0, HEADER.size + length)
    error = plugin_pb2.FastpathError.FromString(data[HEADER.size :])
    assert (error.code, error.message) == (UNAUTHENTICATED, "no HELLO within 0.1 s")


class Big(Plugin):
    """Answers every call with a 64 KiB value, counting the calls it got."""

    def __init__(self) -> None:
        self.calls = 0

    def manifest(self) -> Manifest:
        return Manifest("big", "0.1.0").subscribe("pre_container", 5)

    async def invoke(self, invocation: Any) -> Reply:  # type: ignore[override]
        self.calls += 1
        return Reply.ok().set("/big", "x" * 65536)


def test_a_host_that_does_not_read_its_answers_is_not_read_either(runtime_dir: str) -> None:
    import asyncio

    from outboard_plugin import fastpath

    plugin = Big()
    servicer = PluginServicer(plugin, plugin.manifest(), 1, Health(), None, lambda grace, reason: None, fastpath=True)
    path = os.path.join(runtime_dir, "fast.sock")
    sent = 64

    async def scenario() -> tuple[int, list[int]]:
        server = fastpath.FastpathServer(servicer, "t0ken", "big")
        await server.start(path)
        try:
            reader, writer = await asyncio.open_unix_connection(path)
            hello = plugin_pb2.FastpathHello(token="t0ken", version=1).SerializeToString()
            invoke = plugin_pb2.FastpathInvoke(request=job("ada")).SerializeToString()
            writer.write(fastpath.frame(fastpath.HELLO, 0, hello))
            # One call at a time, each given the loop to be read and
            # answered: 64 answers of 64 KiB are more than the socket and
            # the transport's buffer hold, so the plugin stops reading
            # calls before the last ones, which stay in the socket.
            for i in range(1, sent + 1):
                writer.write(fastpath.frame(fastpath.INVOKE, i, invoke))
                await writer.drain()
                await asyncio.sleep(0.001)
            [connection] = server._connections
            transport = connection._transport
            assert transport is not None
            while transport.is_reading():
                await asyncio.sleep(0.01)
            started_while_paused = plugin.calls
            # Reading the answers lets the rest in.
            ids = []
            await reader.readexactly(fastpath.HEADER.size + 2)  # the HELLO
            for _ in range(sent):
                length, kind, ident = fastpath.HEADER.unpack(await reader.readexactly(fastpath.HEADER.size))
                await reader.readexactly(length)
                assert kind == fastpath.RESULT
                ids.append(ident)
            writer.close()
            return started_while_paused, ids
        finally:
            server.close()

    started_while_paused, ids = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert started_while_paused < sent
    assert sorted(ids) == list(range(1, sent + 1))


def test_an_error_message_too_long_for_a_frame_is_cut_short() -> None:
    from outboard_plugin import fastpath

    from .fastclient import HEADER

    # Multi-byte characters, so that the cut must find a boundary.
    data = fastpath.error_frame(6, grpc.StatusCode.INTERNAL, "é" * MAX_PAYLOAD)
    length, kind, ident = HEADER.unpack_from(data)
    assert (kind, ident, length, len(data)) == (ERROR, 6, len(data) - HEADER.size, HEADER.size + length)
    assert length <= MAX_PAYLOAD
    error = plugin_pb2.FastpathError.FromString(data[HEADER.size :])
    assert error.code == grpc.StatusCode.INTERNAL.value[0]
    assert error.message.startswith("éé")
    assert error.message.endswith("é… (cut short: over the frame limit)")
    # A message that fits is sent whole.
    short = fastpath.error_frame(7, grpc.StatusCode.INTERNAL, "é" * 1000)
    assert plugin_pb2.FastpathError.FromString(short[HEADER.size :]).message == "é" * 1000

"""The SDK as a host sees it: the sample plugin started as a real process,
driven over its Unix socket with a gRPC client."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from outboard_plugin._proto import plugin_pb2
from outboard_plugin.jsonvalue import dict_to_struct, struct_to_dict

from outboard_plugin.testing import RunningPlugin

from .conftest import SAMPLE, host_env, wait_for_file

JOB = {"command": ["make"], "env": {"USER": "ada"}, "metadata": {}}


def invoke_request(context: dict[str, object], deadline_in: float | None = 2.0) -> plugin_pb2.InvokeRequest:
    request = plugin_pb2.InvokeRequest(
        phase="pre_container", invocation_id="inv-1", attempt=1, context=dict_to_struct(context)
    )
    if deadline_in is not None:
        ts = timestamp_pb2.Timestamp()
        ts.FromNanoseconds(int((time.time() + deadline_in) * 1e9))
        request.deadline.CopyFrom(ts)
    return request


def test_handshake_line_and_socket_mode(sample: RunningPlugin) -> None:
    assert sample.line == f"outboard|1|unix|{sample.socket}|grpc"
    mode = os.stat(sample.socket).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


@pytest.mark.parametrize(
    "metadata, says",
    [
        ([], "missing `authorization` metadata"),
        ([("authorization", "Bearer nope")], "wrong token"),
        ([("authorization", "nope")], "malformed `authorization` metadata"),
    ],
)
def test_calls_without_the_token_are_unauthenticated(
    sample: RunningPlugin, metadata: list[tuple[str, str]], says: str
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        sample.stub.Describe(plugin_pb2.DescribeRequest(), metadata=metadata, timeout=5)
    error = raised.value
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    assert says in error.details()  # type: ignore[attr-defined]


def test_a_repeated_token_is_refused_even_if_one_is_right(sample: RunningPlugin) -> None:
    metadata = sample.metadata + [("authorization", "Bearer other")]
    with pytest.raises(grpc.RpcError) as raised:
        sample.stub.Describe(plugin_pb2.DescribeRequest(), metadata=metadata, timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    assert "given 2 times" in raised.value.details()  # type: ignore[attr-defined]


def test_a_child_of_the_plugin_does_not_see_the_token(sample: RunningPlugin) -> None:
    answer = sample.invoke("pre_container", {"metadata": {"sample": {"child_env": True}}})
    names = answer.context["metadata"]["child_env"]
    assert "PATH" in names, names
    assert [n for n in names if n.startswith("OUTBOARD_")] == [], names


def test_health_is_served_without_the_token(sample: RunningPlugin) -> None:
    health = health_pb2_grpc.HealthStub(sample.channel)
    answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_services_and_finds_the_proto(sample: RunningPlugin) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(sample.channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="outboard.v1.PluginService"),
    ]
    listed, found = list(stub.ServerReflectionInfo(iter(requests), timeout=5))
    names = {s.name for s in listed.list_services_response.service}
    assert {"outboard.v1.PluginService", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names
    from google.protobuf import descriptor_pb2

    files = [descriptor_pb2.FileDescriptorProto.FromString(b) for b in found.file_descriptor_response.file_descriptor_proto]
    assert "outboard/v1/plugin.proto" in [f.name for f in files]


def test_the_plugin_can_ask_for_a_restart_through_health(sample: RunningPlugin) -> None:
    health = health_pb2_grpc.HealthStub(sample.channel)
    sample.configure({})
    sample.invoke("pre_container", {**JOB, "metadata": {"sample": {"unhealthy": True}}})
    deadline = time.monotonic() + 2
    status = None
    while time.monotonic() < deadline:
        status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
        if status == health_pb2.HealthCheckResponse.NOT_SERVING:
            break
        time.sleep(0.02)
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_describe_configure_invoke(sample: RunningPlugin) -> None:
    manifest = sample.stub.Describe(plugin_pb2.DescribeRequest(), metadata=sample.metadata, timeout=5).manifest
    assert (manifest.name, manifest.version, manifest.protocol_version) == ("sample", "0.1.0", 1)
    assert [(s.phase, s.priority, s.idempotent) for s in manifest.subscriptions] == [("pre_container", 5, True)]
    assert [p.name for p in manifest.permissions] == ["env:write"]
    assert struct_to_dict(manifest.config_schema)["additionalProperties"] is False

    sample.stub.Configure(
        plugin_pb2.ConfigureRequest(config=dict_to_struct({"greeting": "hi"}), protocol_version=1),
        metadata=sample.metadata,
        timeout=5,
    )
    answer = sample.stub.Invoke(invoke_request(JOB), metadata=sample.metadata, timeout=5)
    assert answer.outcome == plugin_pb2.OUTCOME_CONTINUE
    assert answer.message == "greeted"
    [op] = answer.patch
    assert (op.op, op.path, op.value.string_value) == (plugin_pb2.PATCH_OP_SET, "/env/GREETING", "hi, ada")


def test_invalid_config_is_invalid_argument(sample: RunningPlugin) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        sample.stub.Configure(
            plugin_pb2.ConfigureRequest(config=dict_to_struct({"colour": "red"})), metadata=sample.metadata, timeout=5
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert raised.value.details() == (  # type: ignore[attr-defined]
        "invalid config: unknown key 'colour'; expected one of: greeting"
    )


def test_abort_and_failure(sample: RunningPlugin) -> None:
    answer = sample.stub.Invoke(
        invoke_request({**JOB, "metadata": {"sample": {"abort": "not today"}}}), metadata=sample.metadata, timeout=5
    )
    assert (answer.outcome, answer.message, len(answer.patch)) == (plugin_pb2.OUTCOME_ABORT, "not today", 0)
    with pytest.raises(grpc.RpcError) as raised:
        sample.stub.Invoke(
            invoke_request({**JOB, "metadata": {"sample": {"fail": "no /env"}}}), metadata=sample.metadata, timeout=5
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert raised.value.details() == "invalid context: no /env"  # type: ignore[attr-defined]


def test_deadline_in_the_message_cuts_the_call_off(sample: RunningPlugin) -> None:
    slow = invoke_request({**JOB, "metadata": {"sample": {"sleep": 5}}}, deadline_in=0.2)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as raised:
        sample.stub.Invoke(slow, metadata=sample.metadata, timeout=5)
    assert time.monotonic() - started < 2
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
    assert "did not finish phase 'pre_container' before the deadline" in raised.value.details()  # type: ignore[attr-defined]
    # An expired deadline is refused without doing the work.
    with pytest.raises(grpc.RpcError) as raised:
        sample.stub.Invoke(invoke_request(JOB, deadline_in=-1), metadata=sample.metadata, timeout=5)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
    # And the plugin still answers.
    answer = sample.stub.Invoke(invoke_request(JOB), metadata=sample.metadata, timeout=5)
    assert answer.patch[0].path == "/env/GREETING"


def test_shutdown_answers_then_exits_0_and_removes_the_socket(sample: RunningPlugin) -> None:
    request = plugin_pb2.ShutdownRequest(grace=duration_pb2.Duration(seconds=2), reason="host stopping")
    started = time.monotonic()
    sample.stub.Shutdown(request, metadata=sample.metadata, timeout=5)
    assert sample.process.wait(timeout=3) == 0
    assert time.monotonic() - started < 2.5
    assert not os.path.exists(sample.socket)


def test_shutdown_lets_a_call_in_flight_finish(sample: RunningPlugin, tmp_path: Path) -> None:
    started = tmp_path / "started"
    slow = invoke_request({**JOB, "metadata": {"sample": {"sleep": 0.5, "started": str(started)}}}, deadline_in=5)
    future = sample.stub.Invoke.future(slow, metadata=sample.metadata, timeout=5)
    wait_for_file(started)
    request = plugin_pb2.ShutdownRequest(grace=duration_pb2.Duration(seconds=3))
    sample.stub.Shutdown(request, metadata=sample.metadata, timeout=5)
    assert future.result().message == "greeted"
    assert sample.process.wait(timeout=4) == 0


def test_a_call_still_blocked_at_the_end_of_the_grace_does_not_keep_the_plugin_alive(
    sample: RunningPlugin, tmp_path: Path
) -> None:
    in_flight = tmp_path / "started"
    stuck = invoke_request({**JOB, "metadata": {"sample": {"sleep": 30, "started": str(in_flight)}}}, deadline_in=60)
    future = sample.stub.Invoke.future(stuck, metadata=sample.metadata, timeout=60)
    wait_for_file(in_flight)
    started = time.monotonic()
    request = plugin_pb2.ShutdownRequest(grace=duration_pb2.Duration(seconds=1))
    sample.stub.Shutdown(request, metadata=sample.metadata, timeout=5)
    assert sample.process.wait(timeout=3) == 0
    assert time.monotonic() - started < 1.6
    assert future.exception() is not None
    assert future.exception().code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[union-attr]
    assert not os.path.exists(sample.socket)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_stop_gracefully(sample: RunningPlugin, signum: int) -> None:
    os.killpg(sample.process.pid, signum)
    assert sample.process.wait(timeout=2) == 0
    assert not os.path.exists(sample.socket)


def test_logs_are_json_lines_on_stderr(sample: RunningPlugin) -> None:
    with pytest.raises(grpc.RpcError):
        sample.stub.Configure(
            plugin_pb2.ConfigureRequest(config=dict_to_struct({"colour": "red"})), metadata=sample.metadata, timeout=5
        )
    os.killpg(sample.process.pid, signal.SIGTERM)
    sample.process.wait(timeout=2)
    import json

    records = [json.loads(line) for line in sample.stderr().splitlines() if line.strip()]
    refused = [r for r in records if r["message"] == "configure refused"]
    assert refused and refused[0]["level"] == "warning", records
    assert "unknown key 'colour'" in refused[0]["error"]


def run_plain(env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, str(SAMPLE)], env=env, capture_output=True, timeout=20)


def test_run_by_hand_says_so_and_exits_1() -> None:
    out = run_plain({"PATH": os.environ["PATH"]})
    assert out.returncode == 1
    assert out.stdout == b""
    assert out.stderr.decode() == (
        "sample is an Outboard plugin: start it from an Outboard host "
        f"(for example `outboard describe -- {SAMPLE}`), not directly.\n"
    )


def test_a_socket_that_cannot_be_bound_is_named_and_exits_1(runtime_dir: str) -> None:
    env = host_env(os.path.join(runtime_dir, "missing", "plugin.sock"), "t0ken")
    out = run_plain(env)
    assert (out.returncode, out.stdout) == (1, b"")
    assert out.stderr.decode().splitlines()[-1] == (
        f"sample: cannot bind socket {runtime_dir}/missing/plugin.sock: "
        f"the directory {runtime_dir}/missing does not exist"
    )


@pytest.mark.parametrize(
    "change, says",
    [
        ({"OUTBOARD_PROTOCOL_VERSIONS": "2,3"}, "sample: no common Outboard protocol version: the host speaks 2,3; this plugin speaks 1"),
        ({"OUTBOARD_PROTOCOL_VERSIONS": "1,x"}, "sample: OUTBOARD_PROTOCOL_VERSIONS is '1,x': 'x' is not a positive integer"),
        ({"OUTBOARD_SOCKET": "plugin.sock"}, "sample: OUTBOARD_SOCKET is 'plugin.sock': the socket path must be absolute"),
        ({"OUTBOARD_TOKEN": ""}, "sample: OUTBOARD_TOKEN is not set, but an Outboard host always sets it"),
    ],
)
def test_unusable_variables_are_named_and_exit_1(runtime_dir: str, change: dict[str, str], says: str) -> None:
    env = host_env(os.path.join(runtime_dir, "plugin.sock"), "t0ken")
    env.update(change)
    out = run_plain(env)
    assert (out.returncode, out.stdout, out.stderr.decode()) == (1, b"", says + "\n")
    assert os.listdir(runtime_dir) == []


def test_running_plugin_helpers_drive_the_whole_lifecycle(sample: RunningPlugin) -> None:
    assert sample.describe().name == "sample"
    sample.configure({"greeting": "hey"})
    out = sample.invoke("pre_container", JOB)
    assert out.context["env"] == {"USER": "ada", "GREETING": "hey, ada"}
    assert out.reply.message == "greeted"
    vetoed = sample.invoke("pre_container", {**JOB, "metadata": {"sample": {"abort": "no"}}})
    assert vetoed.context == {**JOB, "metadata": {"sample": {"abort": "no"}}}
    assert sample.shutdown(grace=1) == 0


SAMPLE_ASYNC = SAMPLE.with_name("sample_async.py")


def test_an_async_invoke_answers_and_is_cancelled_at_the_deadline_and_at_the_end_of_the_grace(tmp_path: Path) -> None:
    import json

    with RunningPlugin([sys.executable, str(SAMPLE_ASYNC)]) as plugin:
        plugin.configure({})
        assert plugin.invoke("pre_container", JOB).context["env"]["GREETING"] == "hello, ada"
        # Cut off at the deadline in the message, and the coroutine cancelled.
        slow = invoke_request({**JOB, "metadata": {"sample": {"sleep": 5}}}, deadline_in=0.2)
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as raised:
            plugin.stub.Invoke(slow, metadata=plugin.metadata, timeout=5)
        assert time.monotonic() - started < 2
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
        # Cancelled by the host (its own deadline, shorter than the message's).
        with pytest.raises(grpc.RpcError) as raised:
            plugin.stub.Invoke(invoke_request({**JOB, "metadata": {"sample": {"sleep": 5}}}, deadline_in=10), metadata=plugin.metadata, timeout=0.2)
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
        # Quick ones still answer, and a short sleep finishes.
        quick = invoke_request({**JOB, "metadata": {"sample": {"sleep": 0.01}}})
        assert plugin.stub.Invoke(quick, metadata=plugin.metadata, timeout=5).message == "slept"
        # Still running when the grace is over: cancelled, UNAVAILABLE.
        in_flight = tmp_path / "started"
        stuck = invoke_request({**JOB, "metadata": {"sample": {"sleep": 30, "started": str(in_flight)}}}, deadline_in=60)
        future = plugin.stub.Invoke.future(stuck, metadata=plugin.metadata, timeout=60)
        wait_for_file(in_flight)
        request = plugin_pb2.ShutdownRequest(grace=duration_pb2.Duration(seconds=1))
        plugin.stub.Shutdown(request, metadata=plugin.metadata, timeout=5)
        assert plugin.process.wait(timeout=3) == 0
        assert future.exception().code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[union-attr]
        records = [json.loads(line) for line in plugin.stderr().splitlines() if line.strip()]
        assert [r["message"] for r in records].count("invoke cancelled") == 3, records

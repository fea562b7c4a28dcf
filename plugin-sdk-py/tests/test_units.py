"""Unit tests of the SDK's parts, without a process or a socket."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from outboard_plugin import (
    Config,
    Dependency,
    Failed,
    Invocation,
    Manifest,
    ManifestError,
    NotStartedByHost,
    Outcome,
    Permission,
    Plugin,
    PluginError,
    Reply,
    Settings,
    SettingsError,
    Subscription,
    pointer,
)
from outboard_plugin._proto import plugin_pb2
from outboard_plugin.auth import token_problem
from outboard_plugin.jsonvalue import check_json, dict_to_struct, fill_value, python_to_value, struct_to_dict
from outboard_plugin.log import JsonFormatter
from outboard_plugin.patch import PatchError, PatchOp, apply, parse
from outboard_plugin.testing import Harness

HOST_ENV = {
    "OUTBOARD_MAGIC_COOKIE": "0b7f4a8e-outboard-plugin",
    "OUTBOARD_PROTOCOL_VERSIONS": "1",
    "OUTBOARD_SOCKET": "/tmp/ob-abc/plugin.sock",
    "OUTBOARD_TOKEN": "s3cret",
    "OUTBOARD_PLUGIN_NAME": "envy",
}


# --- settings ---------------------------------------------------------------


def test_settings_read_a_hosts_environment() -> None:
    s = Settings.from_env(HOST_ENV)
    assert (s.socket_path, s.token, s.protocol_version, s.instance_name) == (
        "/tmp/ob-abc/plugin.sock",
        "s3cret",
        1,
        "envy",
    )
    assert "s3cret" not in repr(s), "the token must never reach a log line"


@pytest.mark.parametrize("cookie", [None, "nope", ""])
def test_missing_or_wrong_cookie_means_run_by_hand(cookie: str | None) -> None:
    env = {k: v for k, v in HOST_ENV.items() if k != "OUTBOARD_MAGIC_COOKIE"}
    if cookie is not None:
        env["OUTBOARD_MAGIC_COOKIE"] = cookie
    with pytest.raises(NotStartedByHost):
        Settings.from_env(env)


@pytest.mark.parametrize(
    "versions, chosen",
    [("1", 1), (" 1 , 2", 1), ("2,1,", 1), (",,1", 1)],
)
def test_versions_are_parsed_leniently(versions: str, chosen: int) -> None:
    assert Settings.from_env({**HOST_ENV, "OUTBOARD_PROTOCOL_VERSIONS": versions}).protocol_version == chosen


@pytest.mark.parametrize(
    "change, says",
    [
        ({"OUTBOARD_PROTOCOL_VERSIONS": "2,3"}, "the host speaks 2,3; this plugin speaks 1"),
        ({"OUTBOARD_PROTOCOL_VERSIONS": ""}, "the host speaks ; this plugin speaks 1"),
        ({"OUTBOARD_PROTOCOL_VERSIONS": "+1"}, "'+1' is not a positive integer"),
        ({"OUTBOARD_PROTOCOL_VERSIONS": "0"}, "'0' is not a positive integer"),
        ({"OUTBOARD_PROTOCOL_VERSIONS": "4294967296"}, "is not a positive integer"),
        ({"OUTBOARD_PROTOCOL_VERSIONS": None}, "OUTBOARD_PROTOCOL_VERSIONS is not set"),
        ({"OUTBOARD_SOCKET": "rel/plugin.sock"}, "the socket path must be absolute"),
        ({"OUTBOARD_SOCKET": None}, "OUTBOARD_SOCKET is not set"),
        ({"OUTBOARD_TOKEN": None}, "OUTBOARD_TOKEN is not set"),
    ],
)
def test_unusable_variables_are_named(change: dict[str, str | None], says: str) -> None:
    env: dict[str, str] = {k: v for k, v in {**HOST_ENV, **change}.items() if v is not None}
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    assert says in str(raised.value)


def test_plugin_name_is_optional() -> None:
    env = {k: v for k, v in HOST_ENV.items() if k != "OUTBOARD_PLUGIN_NAME"}
    assert Settings.from_env(env).instance_name is None


# --- the token ----------------------------------------------------------------


def test_token_check_accepts_only_the_launch_token() -> None:
    assert token_problem([("authorization", "Bearer s3cret")], "s3cret") is None
    assert token_problem([("Authorization", "Bearer s3cret")], "s3cret") is None
    for metadata, says in [
        ([], "missing `authorization` metadata"),
        (None, "missing `authorization` metadata"),
        ([("authorization", "s3cret")], "malformed"),
        ([("authorization", "bearer s3cret")], "malformed"),
        ([("authorization", "Bearer s3cre")], "wrong token"),
        ([("authorization", "Bearer s3cretX")], "wrong token"),
        ([("authorization", "Bearer  s3cret")], "wrong token"),
        ([("authorization", "Bearer s3cret"), ("authorization", "Bearer s3cret")], "given 2 times"),
    ]:
        problem = token_problem(metadata, "s3cret")
        assert problem is not None and problem.startswith(says) or problem and says in problem, (metadata, problem)


# --- manifest -----------------------------------------------------------------


def test_manifest_builder_and_wire_form() -> None:
    m = (
        Manifest("env-injector", "1.0.0")
        .describe("Sets BUILD_ID")
        .subscribe("pre_container", 10)
        .subscribe_idempotent("cleanup", -5)
        .permission("env:write", "to set BUILD_ID")
        .depends_on("vault", ">=1.2, <2")
        .depends_on("cache", optional=True)
        .depends_on_optional("store", "^2")
        .feature("x-thing")
        .config_schema({"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}})
    )
    m.validate()
    assert m.subscription_for("cleanup") is not None and m.subscription_for("cleanup").idempotent  # type: ignore[union-attr]
    wire = m.to_proto(1)
    assert (wire.name, wire.version, wire.protocol_version, wire.description) == (
        "env-injector",
        "1.0.0",
        1,
        "Sets BUILD_ID",
    )
    assert [(s.phase, s.priority, s.idempotent) for s in wire.subscriptions] == [
        ("pre_container", 10, False),
        ("cleanup", -5, True),
    ]
    assert [(d.name, d.version_req, d.optional) for d in wire.dependencies] == [
        ("vault", ">=1.2, <2", False),
        ("cache", "", True),
        ("store", "^2", True),
    ]
    assert struct_to_dict(wire.config_schema) == {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 0}},
    }
    assert not Manifest("a", "1.0.0").to_proto(1).HasField("config_schema")


def test_manifest_validation_reports_every_problem_with_its_field() -> None:
    m = (
        Manifest("Env Injector", "1.0")
        .subscribe("pre container", 1)
        .subscribe("x", 1)
        .subscribe("x", 2)
        .permission(" ", "why")
        .depends_on("vault", "not a req")
    )
    m.schema = True  # type: ignore[assignment]
    with pytest.raises(ManifestError) as raised:
        m.validate()
    fields = [p.split(":")[0] for p in raised.value.problems]
    assert fields == [
        "name",
        "version",
        "subscriptions[0].phase",
        "subscriptions[2].phase",
        "permissions[0].name",
        "dependencies[0].version_req",
        "config_schema",
    ]
    assert "'Env Injector'" in raised.value.problems[0]
    assert "also subscriptions[1]" in raised.value.problems[3]


# The table the host's check (outboard_proto::manifest::check) passes too.
MANIFEST_CASES = json.loads(
    (Path(__file__).resolve().parents[2] / "proto" / "testdata" / "manifest-cases.json").read_text()
)["cases"]


def _manifest_from_json(m: dict[str, Any]) -> Manifest:
    """A manifest from the table's protobuf JSON form (absent fields take their defaults)."""
    return Manifest(
        name=m.get("name", ""),
        version=m.get("version", ""),
        description=m.get("description", ""),
        features=list(m.get("features", [])),
        subscriptions=[Subscription(**s) for s in m.get("subscriptions", [])],
        permissions=[Permission(**p) for p in m.get("permissions", [])],
        dependencies=[Dependency(**d) for d in m.get("dependencies", [])],
        event_subscriptions=[e.get("pattern", "") for e in m.get("event_subscriptions", [])],
    )


@pytest.mark.parametrize("case", MANIFEST_CASES, ids=[c["case"] for c in MANIFEST_CASES])
def test_the_shared_table_of_manifest_cases(case: dict[str, Any]) -> None:
    manifest = _manifest_from_json(case["manifest"])
    if not case["errors"]:
        manifest.validate()
        return
    with pytest.raises(ManifestError) as raised:
        manifest.validate()
    assert [e.field for e in raised.value.errors] == case["errors"], raised.value


def test_manifest_errors_name_the_field() -> None:
    m = Manifest("env-injector", "1.0.0").depends_on("env-injector").depends_on("vault").depends_on("vault")
    with pytest.raises(ManifestError) as raised:
        m.validate()
    assert str(raised.value) == (
        "dependencies[0].name: 'env-injector' is the plugin itself; "
        "dependencies[2].name: 'vault' is listed twice (also dependencies[1])"
    )


@pytest.mark.parametrize("version", ["1.0.0", "0.0.1-alpha.1+build", "10.20.30", "1.0.0-rc.1"])
def test_semver_accepted(version: str) -> None:
    Manifest("x", version).validate()


@pytest.mark.parametrize("version", ["1.4", "v1.4.0", "01.0.0", "1.0.0-", ""])
def test_semver_refused(version: str) -> None:
    with pytest.raises(ManifestError):
        Manifest("x", version).validate()


def test_plugin_names_are_bounded_and_start_with_alnum() -> None:
    for bad in ["-x", "", "a" * 65, "A"]:
        with pytest.raises(ManifestError):
            Manifest(bad, "1.0.0").validate()
    Manifest("a" * 64, "1.0.0").validate()
    Manifest("9_lives-2", "0.1.0-rc.1+b7").validate()


# --- reply and patches --------------------------------------------------------


def test_reply_carries_its_patch_in_order() -> None:
    reply = Reply.ok().set("/env/A", "1").set("/metadata/x", {"n": 2}).remove("/env/B").with_message("done")
    wire = reply.to_proto()
    assert wire.outcome == plugin_pb2.OUTCOME_CONTINUE
    assert wire.message == "done"
    assert [(op.op, op.path) for op in wire.patch] == [
        (plugin_pb2.PATCH_OP_SET, "/env/A"),
        (plugin_pb2.PATCH_OP_SET, "/metadata/x"),
        (plugin_pb2.PATCH_OP_REMOVE, "/env/B"),
    ]
    assert struct_to_dict(wire.patch[1].value.struct_value) == {"n": 2}


def test_an_invalid_pointer_is_an_error_not_an_exception_while_building() -> None:
    reply = Reply.ok().set("/ok", 1).set("env/X", 1).remove("")
    with pytest.raises(PluginError) as raised:
        reply.to_proto()
    assert raised.value.code == grpc.StatusCode.INTERNAL
    assert raised.value.status_message == (
        "the plugin built an invalid patch: path 'env/X' is not a valid JSON Pointer: a JSON Pointer starts with '/'"
    )
    with pytest.raises(PluginError) as raised:
        Reply.ok().set("/x", {1, 2}).to_proto()
    assert "set is not a JSON value" in raised.value.status_message


def test_abort_needs_a_message() -> None:
    wire = Reply.abort("license check failed").to_proto()
    assert (wire.outcome, wire.message) == (plugin_pb2.OUTCOME_ABORT, "license check failed")
    with pytest.raises(PluginError) as raised:
        Reply.abort(" ").to_proto()
    assert "must say why" in str(raised.value)


def test_pointer_escapes_each_key() -> None:
    assert pointer("env", "A/B") == "/env/A~1B"
    assert pointer("metadata", "m~n", 0) == "/metadata/m~0n/0"
    assert parse("/metadata/a~1b/m~0n") == ["metadata", "a/b", "m~n"]
    assert parse("/") == [""]
    with pytest.raises(PatchError):
        pointer()
    for bad, why in [("", "empty pointer"), ("env/X", "starts with '/'"), ("/env/a~2b", "'~' must be followed")]:
        with pytest.raises(PatchError, match=why):
            parse(bad)
    with pytest.raises(PatchError, match="at most 32 levels"):
        parse("/a" * 33)
    parse("/a" * 32)


def test_the_protocols_worked_example_applies() -> None:
    before = {"command": ["make", "test"], "env": {"CI": "1", "HOME": "/home/ci"}, "metadata": {"note": None}}
    ops = [
        PatchOp("set", "/env/BUILD_ID", "42"),
        PatchOp("set", "/metadata/cache/hit", True),
        PatchOp("set", "/command/-", "-j4"),
        PatchOp("set", "/command/0", "gmake"),
        PatchOp("remove", "/env/HOME"),
        PatchOp("remove", "/env/NOT_THERE"),
        PatchOp("remove", "/command/1"),
        PatchOp("set", "/metadata/a~1b", 3),
    ]
    assert apply(before, ops) == {
        "command": ["gmake", "-j4"],
        "env": {"CI": "1", "BUILD_ID": "42"},
        "metadata": {"note": None, "cache": {"hit": True}, "a/b": 3},
    }
    assert before["env"] == {"CI": "1", "HOME": "/home/ci"}, "apply does not change its input"
    for path in ["/command/2", "/command/01", "/command/-/x", "/command/0/x", "/metadata/note/x"]:
        with pytest.raises(PatchError):
            apply(before, [PatchOp("set", path, 1)])
    for path in ["/env/NOT_THERE", "/nothing/here", "/command/5", "/command/-", "/metadata/note/x"]:
        assert apply(before, [PatchOp("remove", path)]) == before


# --- JSON <-> Struct ----------------------------------------------------------


def test_struct_round_trip_keeps_integers_integral() -> None:
    doc: dict[str, Any] = {
        "null": None,
        "t": True,
        "int": 3,
        "neg": -7,
        "float": 1.5,
        "s": "x",
        "list": [1, "a", [], {}],
        "obj": {"nested": {"deep": False}},
        "big": 2**60,
    }
    back = struct_to_dict(dict_to_struct(doc))
    assert back == {**doc, "big": float(2**60)}
    assert isinstance(back["int"], int) and isinstance(back["t"], bool)
    assert struct_to_dict(None) == {}
    assert struct_to_dict(dict_to_struct({"nan": math.nan}))["nan"] is None
    assert python_to_value((1, 2)).list_value.values[1].number_value == 2


def test_non_json_values_name_their_place() -> None:
    with pytest.raises(TypeError, match="/a/1: object is not a JSON value"):
        dict_to_struct({"a": [1, object()]})


class _Frozen(dict[str, Any]):
    """A dict subclass: not the fast path of check_json and fill_value."""


@pytest.mark.parametrize(
    "value",
    [
        None, True, 0, -7, 1.5, math.nan, "x", "é", [], {}, (1, "a"), [1, [2, {"k": None}]],
        {"a": {"b": [True, 2**60, "z"]}}, _Frozen(a=[1]), {"a": [1, object()]}, {1: "x"},
        {"k": {2.5: 1}}, {"s": {1, 2}}, b"bytes", "\ud800", {"\ud800": 1}, [10**400], {"a": (1, {"b": 3j})},
    ],
)
def test_check_json_raises_what_the_conversion_raises(value: Any) -> None:
    def outcome(f: Any) -> Any:
        try:
            f()
        except Exception as e:
            return type(e), str(e)
        return None

    converted = outcome(lambda: python_to_value(value))
    assert outcome(lambda: check_json(value)) == converted
    if converted is None:
        filled = plugin_pb2.PatchOperation()
        fill_value(filled.value, value)
        assert filled.value == python_to_value(value)


# --- errors and logs ----------------------------------------------------------


def test_error_kinds_map_to_status_codes_and_keep_the_message() -> None:
    cases = [
        (PluginError.invalid_config('memory: "lots" is not a size'), grpc.StatusCode.INVALID_ARGUMENT, 'invalid config: memory: "lots" is not a size'),
        (PluginError.invalid_context("no /env"), grpc.StatusCode.INVALID_ARGUMENT, "invalid context: no /env"),
        (PluginError.failed("disk full"), grpc.StatusCode.INTERNAL, "disk full"),
        (PluginError.internal("bug"), grpc.StatusCode.INTERNAL, "bug"),
        (PluginError.unavailable("vault down"), grpc.StatusCode.UNAVAILABLE, "unavailable: vault down"),
        (PluginError.failed_precondition("no env:write"), grpc.StatusCode.FAILED_PRECONDITION, "no env:write"),
    ]
    for err, code, message in cases:
        assert (err.code, err.status_message, str(err)) == (code, message, message)
    assert PluginError.failed("x").message == "x"


def test_config_helpers() -> None:
    c = Config(values={"prefix": "ci"}, granted_permissions=["env:write"])
    assert c.get("prefix") == "ci" and c.get("nope", 1) == 1
    c.require("env:write")
    with pytest.raises(PluginError) as raised:
        c.require("net")
    assert raised.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "'net' was not granted" in str(raised.value)
    with pytest.raises(PluginError, match="unknown key 'prefix'; expected one of: a, b"):
        c.check_keys({"a", "b"})


def test_log_records_are_one_json_object_per_line() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord("outboard_plugin", logging.WARNING, __file__, 1, "job %s", ("done",), None)
    record.phase = "post_container"
    out = json.loads(formatter.format(record))
    assert out == {"level": "warning", "message": "job done", "logger": "outboard_plugin", "phase": "post_container"}
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    line = formatter.format(record)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exception"]


# --- invocation and the harness -----------------------------------------------


def test_invocation_reads_the_context() -> None:
    inv = Invocation(
        "pre_container",
        {"env": {"HOME": "/root", "N": 3}, "metadata": {"a/b": {"c": [10, 20]}}, "exit_code": 0},
    )
    assert inv.env("HOME") == "/root"
    assert inv.env("N") is None
    assert inv.env("MISSING") is None
    assert inv.get("/exit_code") == 0
    assert inv.get("/metadata/a~1b/c/1") == 20
    assert inv.get("/metadata/nope") is None
    assert inv.get("metadata", "x") == "x"
    assert inv.time_left() is None


class Greeter(Plugin):
    def __init__(self) -> None:
        self.prefix = "hello"
        self.configured: Config | None = None

    def manifest(self) -> Manifest:
        return Manifest("greeter", "0.1.0").subscribe("pre_container").permission("env:write", "greets")

    def configure(self, config: Config) -> None:
        config.require("env:write")
        self.prefix = str(config.get("prefix", "hello"))
        self.configured = config

    def invoke(self, invocation: Invocation) -> Reply:
        if invocation.env("NO") == "1":
            return Reply.abort("asked not to")
        if "env" not in invocation.context:
            raise PluginError.invalid_context("/env is missing")
        if invocation.env("BOOM") == "1":
            raise RuntimeError("kaboom")
        return Reply.ok().set("/env/GREETING", f"{self.prefix} {invocation.attempt}")


def test_harness_drives_a_plugin_as_the_host_would() -> None:
    h = Harness(Greeter())
    h.configure({"prefix": "hi"}, instance_name="greeter-2")
    assert h.plugin.configured is not None  # type: ignore[attr-defined]
    assert h.plugin.configured.instance_name == "greeter-2"  # type: ignore[attr-defined]
    out = h.invoke("pre_container", {"env": {"A": "1"}}, attempt=2)
    assert out.outcome is Outcome.CONTINUE
    assert out.context == {"env": {"A": "1", "GREETING": "hi 2"}}
    assert out.get("/env/GREETING") == "hi 2"

    vetoed = h.invoke("pre_container", {"env": {"NO": "1"}})
    assert (vetoed.outcome, vetoed.reply.message, vetoed.context) == (Outcome.ABORT, "asked not to", {"env": {"NO": "1"}})

    with pytest.raises(PluginError) as raised:
        h.invoke("pre_container", {})
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(Failed, match="RuntimeError: kaboom"):
        h.invoke("pre_container", {"env": {"BOOM": "1"}})
    with pytest.raises(PluginError) as raised:
        h.configure({}, granted=[])
    assert raised.value.code == grpc.StatusCode.FAILED_PRECONDITION


def test_harness_refuses_a_patch_the_host_would_refuse() -> None:
    class Bad(Greeter):
        def invoke(self, invocation: Invocation) -> Reply:
            return Reply.ok().set("/env/X/Y", "1")

    with pytest.raises(Failed, match="cannot set /env/X/Y: /env/X is a string"):
        Harness(Bad()).invoke("pre_container", {"env": {"X": "1"}})


def test_harness_supports_async_plugins() -> None:
    class Async(Greeter):
        async def invoke(self, invocation: Invocation) -> Reply:  # type: ignore[override]
            return Reply.ok().set("/metadata/async", True)

    assert Harness(Async()).invoke("pre_container", {}).context == {"metadata": {"async": True}}


# --- worker threads -------------------------------------------------------------


def test_worker_pool_runs_calls_in_named_threads_and_grows_when_busy() -> None:
    import threading

    from outboard_plugin.workers import WorkerPool

    pool = WorkerPool(max_workers=2, thread_name_prefix="w")

    def blocker(started: threading.Event, release: threading.Event) -> str:
        started.set()
        release.wait(5)
        return threading.current_thread().name

    try:
        assert pool.submit(lambda: threading.current_thread().name).result(timeout=5) == "w_0"
        with pytest.raises(ZeroDivisionError):
            pool.submit(lambda: 1 / 0).result(timeout=5)
        # One call blocked: the next one runs all the same, in another thread.
        started, release = threading.Event(), threading.Event()
        blocked = pool.submit(blocker, started, release)
        assert started.wait(5)
        other = pool.submit(lambda: threading.current_thread().name).result(timeout=5)
        assert other.startswith("w_")
        # Both threads blocked, at the maximum: a third call waits for one.
        started2, release2 = threading.Event(), threading.Event()
        blocked2 = pool.submit(blocker, started2, release2)
        assert started2.wait(5)
        # call() decides synchronously: no third thread, the call queued.
        waiting = pool.submit(lambda: "ran")
        assert [t.name for t in pool._threads] == ["w_0", "w_1"]
        assert pool._queue.qsize() == 1
        assert not waiting.done()
        release.set()
        assert waiting.result(timeout=5) == "ran"
        release2.set()
        assert blocked.result(timeout=5) != blocked2.result(timeout=5)
        # call(): fire and forget, the function reports its own outcome.
        done = threading.Event()
        pool.call(done.set)
        assert done.wait(5)
    finally:
        release.set()
        release2.set()
        pool.shutdown(wait=True)
    assert not any(t.name.startswith("w_") for t in threading.enumerate())
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(lambda: None)


def test_worker_pool_shutdown_cancels_calls_not_started() -> None:
    import threading

    from outboard_plugin.workers import WorkerPool

    pool = WorkerPool(max_workers=1)
    started, release = threading.Event(), threading.Event()

    def blocker() -> bool:
        started.set()
        return release.wait(5)

    running = pool.submit(blocker)
    assert started.wait(5)
    queued = pool.submit(lambda: "never")
    pool.shutdown(wait=False, cancel_futures=True)
    assert queued.cancelled()
    release.set()
    assert running.result(timeout=5) is True

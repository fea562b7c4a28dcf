"""Host services: the clients against the in-memory FakeHost (the rules an
author relies on), the harness delivering events, and a real plugin process
calling a FakeHost served on a Unix socket, as it would call the host."""

from __future__ import annotations

import os
import sys
import threading
from concurrent import futures
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from outboard_plugin import (
    ABSENT,
    CasResult,
    Config,
    Event,
    FailedPrecondition,
    HostEndpoint,
    HostError,
    HostServices,
    HostServicesNotOffered,
    Invocation,
    Manifest,
    Plugin,
    Reply,
    Secret,
    Settings,
    Unimplemented,
)
from outboard_plugin.events import glob_match
from outboard_plugin.testing import FakeHost, Harness, RunningPlugin

sys.path.insert(0, str(Path(__file__).parent / "plugins"))
from counter import Counter, increment  # noqa: E402

COUNTER = Path(__file__).parent / "plugins" / "counter.py"
HOST_TOKEN = "host-token-abcdef"


def test_get_set_delete_and_ttl_on_the_fake_clock() -> None:
    host = FakeHost()
    kv = host.services().kv()
    assert kv.get("k") is None
    kv.set("k", b"")
    entry = kv.get("k")
    assert entry is not None and entry.value == b"" and entry.expires is None
    kv.set("k", "v", ttl=10)
    entry = kv.get("k")
    assert entry is not None and entry.text() == "v"
    assert entry.expires == pytest.approx(host.now + 10)
    host.advance(9.5)
    assert kv.get("k") is not None
    host.advance(0.5)
    assert kv.get("k") is None, "expired at its instant"
    assert not kv.delete("k")
    kv.set("k", "v")
    assert kv.delete("k") and not kv.delete("k")


def test_compare_and_set() -> None:
    host = FakeHost()
    kv = host.services().kv()
    assert kv.compare_and_set("n", ABSENT, "1") == CasResult(True)
    assert kv.compare_and_set("n", ABSENT, "2") == CasResult(False, b"1")
    assert kv.compare_and_set("n", "1", "2")
    assert kv.compare_and_set("gone", b"", "x") == CasResult(False, None), "empty never matches absent"
    kv.set("t", "old", ttl=1)
    host.advance(1)
    assert kv.compare_and_set("t", ABSENT, "new"), "an expired key counts as absent"


def test_sixteen_threads_lose_no_increment() -> None:
    host = FakeHost()
    kv = host.services().kv().shared("jobs")
    threads = [threading.Thread(target=increment, args=(kv, "count")) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert host.value("count", shared="jobs") == b"16"
    assert host.value("count") is None, "own and shared namespaces are apart"


def test_lists_walk_pages_in_key_order() -> None:
    kv = FakeHost().services().kv()
    for i in reversed(range(250)):
        kv.set(f"job/{i:03}", str(i))
    kv.set("other", "x")
    first = kv.list_page("job/", page_size=100)
    assert len(first.entries) == 100 and first.entries[0].key == "job/000" and first.next
    assert [e.key for e in kv.list("job/")] == [f"job/{i:03}" for i in range(250)]
    assert all(e.value == b"" for e in kv.list("job/", keys_only=True))
    with pytest.raises(HostError) as e:
        kv.list_page("other", page_token=first.next)
    assert e.value.host_code is grpc.StatusCode.INVALID_ARGUMENT


def test_limits_and_rules_are_named() -> None:
    host = FakeHost(value_size=4)
    kv = host.services().kv()
    with pytest.raises(HostError, match="kv value size: 5 bytes > limit 4") as e:
        kv.set("k", "12345")
    assert e.value.host_code is grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(HostError, match="key: empty"):
        kv.get("")
    with pytest.raises(HostError, match="namespace:"):
        kv.shared("Bad Name").get("k")
    with pytest.raises(HostError, match="reserved"):
        host.services().events().publish("job.finished", {})


def test_grants_secrets_and_publishes() -> None:
    host = FakeHost(
        plugin="counter",
        grants=["kv", "secret:api-key", "event:publish:build.*"],
        secrets={"api-key": "s3cret", "other": "nope"},
    )
    services = host.services()
    services.kv().set("k", "v")
    with pytest.raises(HostError) as e:
        services.kv().shared("jobs").get("k")
    assert e.value.host_code is grpc.StatusCode.PERMISSION_DENIED
    assert e.value.code is grpc.StatusCode.FAILED_PRECONDITION, "what the plugin answers if it lets it fly"
    assert str(e.value).endswith("plugin 'counter' lacks permission 'kv:shared:jobs'")
    secret = services.secrets().get("api-key")
    assert secret.expose_str() == "s3cret" and secret == Secret("s3cret")
    assert "s3cret" not in repr(secret) and "s3cret" not in f"{secret}"
    for name in ("other", "missing"):
        with pytest.raises(HostError) as e:
            services.secrets().get(name)
        assert e.value.host_code is grpc.StatusCode.PERMISSION_DENIED, f"no probing: {name}"
    event_id = services.events().publish("build.flaky", {"cmd": "make"})
    with pytest.raises(HostError):
        services.events().publish("deploy.done")
    assert [(p.id, p.name, p.payload) for p in host.published] == [(event_id, "build.flaky", {"cmd": "make"})]


def test_a_publish_retried_with_its_key_publishes_once() -> None:
    host = FakeHost()
    events = host.services().events()
    first = events.publish("build.flaky", 1, idempotency_key="run-7")
    again = events.publish("build.flaky", 1, idempotency_key="run-7")
    other = events.publish("build.flaky", 2, idempotency_key="run-8")
    assert first == again and first != other
    assert [p.id for p in host.published] == [first, other]


def test_without_host_services_every_call_names_the_variable() -> None:
    services = Config().host
    assert not services.is_offered
    with pytest.raises(HostServicesNotOffered, match="^host services are not available: OUTBOARD_HOST_SOCKET") as e:
        services.kv().get("k")
    assert e.value.code is FailedPrecondition.code and e.value.missing == "OUTBOARD_HOST_SOCKET"


def test_settings_read_the_host_variables_and_hide_the_token() -> None:
    env = {
        "OUTBOARD_MAGIC_COOKIE": "0b7f4a8e-outboard-plugin",
        "OUTBOARD_PROTOCOL_VERSIONS": "1",
        "OUTBOARD_SOCKET": "/tmp/x/p.sock",
        "OUTBOARD_TOKEN": "t",
    }
    assert Settings.from_env(env).host is None
    full = {**env, "OUTBOARD_HOST_SOCKET": "/tmp/x/h.sock", "OUTBOARD_HOST_TOKEN": "h0st-t0ken"}
    settings = Settings.from_env(full)
    assert settings.host == HostEndpoint("/tmp/x/h.sock", "h0st-t0ken")
    assert "h0st-t0ken" not in repr(settings)
    assert settings.host_services().is_offered
    half = Settings.from_env({**env, "OUTBOARD_HOST_SOCKET": "/tmp/x/h.sock"})
    assert half.host is None and half.host_missing == "OUTBOARD_HOST_TOKEN"


def test_glob() -> None:
    assert glob_match("job.*", "job.finished") and glob_match("*", "a.b") and glob_match("*.failed", "plugin.failed")
    assert not glob_match("job.*", "jobs.x") and not glob_match("a*a", "a") and not glob_match("job", "jobs")


class Watcher(Plugin):
    def manifest(self) -> Manifest:
        return Manifest("watcher", "0.1.0").subscribe_event("job.*")

    def configure(self, config: Config) -> None:
        config.kv().set("configured", "yes")

    def invoke(self, invocation: Invocation) -> Reply:
        raise AssertionError("no phases")

    def on_event(self, event: Event) -> None:
        event.kv().set(event.name, str(event.get("exit_code")))


class Forgetful(Plugin):
    def manifest(self) -> Manifest:
        return Manifest("forgetful", "0.1.0").subscribe_event("*")

    def invoke(self, invocation: Invocation) -> Reply:
        return Reply.ok()


def test_events_reach_on_event_and_the_rest_is_unimplemented() -> None:
    host = FakeHost()
    harness = Harness(Watcher(), host=host)
    assert [s.pattern for s in harness.manifest.to_proto(1).event_subscriptions] == ["job.*"]
    assert [p.name for p in harness.manifest.permissions] == ["event:subscribe:job.*"]
    harness.configure()
    assert host.value("configured") == b"yes"
    harness.deliver(Event("job.finished", {"exit_code": 3}))
    assert host.value("job.finished") == b"3"
    with pytest.raises(Unimplemented, match="does not subscribe"):
        harness.deliver(Event("reload.finished", {}))
    with pytest.raises(Unimplemented, match="Plugin.on_event"):
        Harness(Forgetful()).deliver(Event("anything"))


def test_event_patterns_are_checked() -> None:
    with pytest.raises(ValueError, match=r"event_subscriptions\[1\].pattern"):
        Manifest("x", "0.1.0").subscribe_event("job.*").subscribe_event("Job!").validate()


# --- over a socket ---------------------------------------------------------------


@pytest.fixture
def served_host(runtime_dir: str) -> Iterator[tuple[FakeHost, str]]:
    """A FakeHost demanding HOST_TOKEN, served on a socket in a private dir."""
    host = FakeHost(token=HOST_TOKEN, grants=["kv", "kv:shared:jobs"])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    host.add_to_server(server)
    socket = os.path.join(runtime_dir, "h.sock")
    server.add_insecure_port(f"unix:{socket}")
    server.start()
    yield host, socket
    server.stop(None)


def test_the_client_carries_the_token_and_the_host_decides(served_host: tuple[FakeHost, str]) -> None:
    host, socket = served_host
    services = HostServices.connect(HostEndpoint(socket, HOST_TOKEN))
    services.kv().set("k", "v")
    assert host.value("k") == b"v"
    with pytest.raises(HostError) as e:
        services.secrets().get("x")
    assert e.value.host_code is grpc.StatusCode.PERMISSION_DENIED
    stranger = HostServices.connect(HostEndpoint(socket, "guessed"))
    with pytest.raises(HostError) as e:
        stranger.kv().get("k")
    assert e.value.host_code is grpc.StatusCode.UNAUTHENTICATED


def test_an_unreachable_host_is_named_by_its_variable(runtime_dir: str) -> None:
    services = HostServices.connect(HostEndpoint(os.path.join(runtime_dir, "none.sock"), HOST_TOKEN))
    with pytest.raises(HostError) as e:
        services.kv().get("k")
    assert e.value.host_code is grpc.StatusCode.UNAVAILABLE
    assert "OUTBOARD_HOST_SOCKET=" in str(e.value) and HOST_TOKEN not in str(e.value)


def test_a_plugin_process_calls_back_and_unhandled_events_are_unimplemented(
    served_host: tuple[FakeHost, str],
) -> None:
    host, socket = served_host
    env = {"OUTBOARD_HOST_SOCKET": socket, "OUTBOARD_HOST_TOKEN": HOST_TOKEN}
    # A checkout tested against another checkout's venv points it here.
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    with RunningPlugin([sys.executable, str(COUNTER)], env=env) as plugin:
        plugin.configure({})
        with futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda _: plugin.invoke("pre_container", {}, timeout=10), range(16)))
        assert host.value("runs", shared="jobs") == b"16"
        delivery = Event("job.finished", {"exit_code": 0}, id="ev-1")
        answer = plugin.invoke("event:job.finished", delivery.to_context(), timeout=10)
        assert answer.reply.patch() == []
        assert host.value("job.finished") == b"1"
        other = Event("deploy.done", None, id="ev-2", source="plugin:x")
        with pytest.raises(grpc.RpcError) as e:
            plugin.invoke("event:deploy.done", other.to_context())
        assert e.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert Counter().manifest().event_subscriptions == ["job.*"]

"""event-notifier: the messages, the file and loopback sinks, repeated
deliveries, and events it does not handle, on the SDK's harness and fake
host."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from outboard_example_plugins.event_notifier import EventNotifier, job_text, plugin_text
from outboard_plugin import Event, PluginError, Unimplemented
from outboard_plugin.testing import FakeHost, Harness

from .conftest import Hook

FINISHED = {"job": "6f1c2d3e-aaaa", "command": ["make", "test"], "status": "exit_code", "exit_code": 2, "duration_ms": 1320}


def harness(config: dict[str, Any]) -> Harness:
    h = Harness(EventNotifier(), host=FakeHost())
    h.configure(config)
    return h


def lines(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text().splitlines()]


def test_subscribes_to_the_two_events_and_asks_for_their_grants() -> None:
    manifest = EventNotifier().manifest()
    assert manifest.event_subscriptions == ["job.finished", "plugin.failed"]
    assert [p.name for p in manifest.permissions] == ["event:subscribe:job.finished", "event:subscribe:plugin.failed"]
    assert manifest.subscriptions == []


def test_posts_both_events_to_a_file_once_each(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    h = harness({"file": str(path)})
    h.deliver(Event("job.finished", FINISHED, id="ev-1"))
    h.deliver(Event("job.finished", FINISHED, id="ev-1", attempt=2))
    h.deliver(Event("plugin.failed", {"plugin": "audit-log", "reason": "crash loop\n(5 starts in 60 s)"}, id="ev-2"))
    assert lines(path) == [
        ":x: job 6f1c2d3e failed: `make test` exited with 2 after 1.3 s",
        ":rotating_light: plugin `audit-log` failed: crash loop (5 starts in 60 s)",
    ]


def test_notify_failure_leaves_out_jobs_that_succeeded(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    h = harness({"file": str(path), "notify": "failure"})
    h.deliver(Event("job.finished", {**FINISHED, "status": "succeeded", "exit_code": 0}, id="ev-1"))
    h.deliver(Event("plugin.failed", {"plugin": "x", "reason": "gone"}, id="ev-2"))
    assert lines(path) == [":rotating_light: plugin `x` failed: gone"]


def test_posts_to_a_loopback_webhook(hook: Hook) -> None:
    h = harness({"url": f"http://127.0.0.1:{hook.port}/hooks/outboard"})
    h.deliver(Event("job.finished", {**FINISHED, "status": "succeeded", "exit_code": 0}))
    [(path, headers, body)] = hook.received
    assert path == "/hooks/outboard" and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"text": ":white_check_mark: job 6f1c2d3e succeeded: `make test` exited with 0 after 1.3 s"}


def test_a_failed_post_raises_so_the_host_retries(tmp_path: Path) -> None:
    hook = Hook(status=500)
    try:
        h = harness({"url": f"http://127.0.0.1:{hook.port}/h"})
        with pytest.raises(PluginError, match="answered 500"):
            h.deliver(Event("plugin.failed", {"plugin": "x", "reason": "y"}, id="ev-9"))
        with pytest.raises(PluginError, match="answered 500"):
            h.deliver(Event("plugin.failed", {"plugin": "x", "reason": "y"}, id="ev-9", attempt=2))
        assert len(hook.received) == 2, "not remembered until it was posted"
    finally:
        hook.close()


def test_other_events_have_no_handler(tmp_path: Path) -> None:
    h = harness({"file": str(tmp_path / "e.jsonl")})
    with pytest.raises(Unimplemented):
        h.deliver(Event("reload.finished", {"ok": True}))


def test_texts_tolerate_partial_payloads() -> None:
    assert job_text({}) == ":x: job ? failed"
    vetoed = {"job": "j", "command": ["sudo", "true"], "status": "vetoed", "exit_code": None}
    assert job_text(vetoed) == ":x: job j failed (vetoed): `sudo true`"
    assert plugin_text({"plugin": "p", "reason": "x" * 1000}).endswith("x…")
    assert len(plugin_text({"plugin": "p", "reason": "x" * 1000})) < 400

"""chat-notifier: the message, the loopback rule, the config checks, and the
plugin as a real process posting to a webhook on 127.0.0.1."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from outboard_example_plugins.chat_notifier import NEW_FILE_MODE, ChatNotifier, budget, parse_url
from outboard_plugin import Invocation, PluginError
from outboard_plugin.testing import Harness, RunningPlugin

from .conftest import Hook, script


def finished(exit_code: int | None = 0) -> dict[str, Any]:
    context: dict[str, Any] = {
        "job_id": "6f1c2d3e",
        "command": ["make", "test", "NAME=a b"],
        "env": {},
        "metadata": {},
        "dry_run": False,
    }
    if exit_code is not None:
        context["exit_code"] = exit_code
    return context


def harness(config: dict[str, Any]) -> Harness:
    h = Harness(ChatNotifier())
    h.configure(config)
    return h


def test_file_mode_appends_one_json_line_per_job(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    h = harness({"file": str(path)})
    out = h.invoke("post_container", finished(0))
    h.invoke("post_container", finished(2))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [
        {"text": ":white_check_mark: job 6f1c2d3e succeeded: `make test 'NAME=a b'` exited with 0"},
        {"text": ":x: job 6f1c2d3e failed: `make test 'NAME=a b'` exited with 2"},
    ]
    assert out.context["metadata"] == {"chat_notifier": {"delivered_to": str(path), "text": lines[0]["text"]}}


def test_file_mode_refuses_a_planted_link_and_creates_a_private_file(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_text("precious\n")
    path = tmp_path / "chat.jsonl"
    path.symlink_to(target)
    h = harness({"file": str(path)})
    with pytest.raises(PluginError) as raised:
        h.invoke("post_container", finished(0))
    assert raised.value.message == (
        f"cannot append to {path}: it is a symbolic link, which is not followed "
        "(refusing to write where someone else may point it)"
    )
    assert target.read_text() == "precious\n"

    path.unlink()
    h.invoke("post_container", finished(0))
    assert stat.S_IMODE(path.stat().st_mode) == NEW_FILE_MODE == 0o600
    assert len(path.read_text().splitlines()) == 1


def test_file_mode_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(PluginError) as raised:
        harness({"file": str(fifo)}).invoke("post_container", finished(0))
    assert raised.value.message == f"cannot append to {fifo}: it is a FIFO, not a regular file"


def test_url_mode_posts_the_message(hook: Hook) -> None:
    url = f"http://localhost:{hook.port}/hooks/outboard?x=1"
    out = harness({"url": url}).invoke("post_container", finished(1))
    [(path, headers, body)] = hook.received
    assert path == "/hooks/outboard?x=1"
    assert headers["Host"] == f"localhost:{hook.port}"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"text": ":x: job 6f1c2d3e failed: `make test 'NAME=a b'` exited with 1"}
    assert out.reply.message == f"sent to {url}"


def test_notify_failure_skips_successful_jobs(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    h = harness({"file": str(path), "notify": "failure"})
    out = h.invoke("post_container", finished(0))
    assert out.reply.message == "the job succeeded: nothing sent (notify = failure)"
    assert not path.exists()
    h.invoke("post_container", finished(3))
    assert "failed" in path.read_text()


def test_a_command_that_did_not_run_sends_nothing(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    out = harness({"file": str(path)}).invoke("post_container", {**finished(None), "dry_run": True})
    assert out.reply.patch() == [] and not path.exists()


def test_webhook_failures_are_unavailable_naming_the_url() -> None:
    failing = Hook(status=500)
    try:
        url = f"http://127.0.0.1:{failing.port}/hook"
        with pytest.raises(PluginError) as raised:
            harness({"url": url}).invoke("post_container", finished(0))
        assert raised.value.code == grpc.StatusCode.UNAVAILABLE
        assert raised.value.message == f"POST {url} answered 500 Internal Server Error"
    finally:
        failing.close()

    slow = Hook(delay=2)
    try:
        url = f"http://127.0.0.1:{slow.port}/hook"
        started = time.monotonic()
        with pytest.raises(PluginError) as raised:
            harness({"url": url}).invoke_with(
                Invocation("post_container", finished(0), deadline=time.time() + 0.4)
            )
        assert time.monotonic() - started < 1.5
        assert raised.value.message.startswith(f"POST {url}: no answer within ")
    finally:
        slow.close()

    # Nobody listening.
    closed = Hook()
    port = closed.port
    closed.close()
    with pytest.raises(PluginError) as raised:
        harness({"url": f"http://127.0.0.1:{port}/"}).invoke("post_container", finished(0))
    assert raised.value.message.startswith(f"POST http://127.0.0.1:{port}/: cannot connect: ")


def test_only_loopback_http_urls_are_accepted() -> None:
    ok = {
        "http://127.0.0.1:8080/hook": "http://127.0.0.1:8080/hook",
        "http://127.1.2.3/": "http://127.1.2.3/",
        "http://[::1]:9000": "http://[::1]:9000/",
        "HTTP://localhost:81/a?b=c": "http://127.0.0.1:81/a?b=c",
    }
    for url, target in ok.items():
        assert parse_url(url).target == target, url
    refused = {
        "https://127.0.0.1/hook": "only http:// URLs",
        "http://example.com/hook": "not 'example.com'",
        "http://10.0.0.1/hook": "not 10.0.0.1",
        "http://0.0.0.0/": "not 0.0.0.0",
        "http://[::ffff:127.0.0.1]/": "not ::ffff:127.0.0.1",
        "http://localhost.example.com/": "not 'localhost.example.com'",
        "http://user@127.0.0.1/": "user information",
        "http://127.0.0.1:99999/": "not a port number",
        "http://127.0.0.1:0/": "port 0",
        "http:///hook": "no host",
        "http://127.0.0.1/a b": "spaces",
        "http://127.0.0.1/#top": "fragment",
    }
    for url, says in refused.items():
        with pytest.raises(ValueError) as raised:
            parse_url(url)
        assert says in str(raised.value), (url, str(raised.value))


@pytest.mark.parametrize(
    "config, says",
    [
        ({"url": "http://192.168.1.10/hook"}, "url: 'http://192.168.1.10/hook' is not allowed: the host must be this machine"),
        ({"url": "http://127.0.0.1/", "file": "/tmp/x"}, "give one of `url` and `file`, not both"),
        ({}, "a destination is required: set `url` or `file`"),
        ({"file": "/nonexistent-dir/chat.jsonl"}, "the directory /nonexistent-dir of"),
        ({"file": "/tmp/x", "notify": "sometimes"}, "notify: 'sometimes' is not one of always, failure"),
        ({"file": "/tmp/x", "retries": 3}, "unknown key 'retries'"),
    ],
)
def test_bad_config_is_invalid_argument(config: dict[str, Any], says: str) -> None:
    with pytest.raises(PluginError) as raised:
        harness(config)
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert says in raised.value.message


def test_bad_context_is_invalid_argument_naming_the_key(tmp_path: Path) -> None:
    h = harness({"file": str(tmp_path / "c.jsonl")})
    for change, says in [
        ({"exit_code": "0"}, "/exit_code is '0', not an integer"),
        ({"job_id": None}, "/job_id is missing"),
        ({"command": "make"}, "/command is 'make', not an array of strings"),
    ]:
        context = {**finished(0), **change}
        if change.get("job_id", "") is None:
            del context["job_id"]
        with pytest.raises(PluginError) as raised:
            h.invoke("post_container", context)
        assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert says in raised.value.message


def test_unconfigured_invoke_fails_rather_than_passing_silently() -> None:
    with pytest.raises(PluginError, match="chat-notifier was not configured"):
        Harness(ChatNotifier()).invoke("post_container", finished(0))


def test_budget_follows_the_deadline() -> None:
    assert budget(None) == 2.0
    assert budget(5.0) == pytest.approx(4.9)
    assert budget(0.1) == pytest.approx(0.05)
    assert budget(0.0) == 0.0


def test_the_installed_command_posts_to_a_local_webhook(hook: Hook) -> None:
    with RunningPlugin([script("chat-notifier")]) as plugin:
        plugin.configure({"url": f"http://127.0.0.1:{hook.port}/hook"})
        out = plugin.invoke("post_container", finished(0))
        assert out.context["metadata"]["chat_notifier"]["delivered_to"] == f"http://127.0.0.1:{hook.port}/hook"
        assert json.loads(hook.received[0][2])["text"].startswith(":white_check_mark: job 6f1c2d3e succeeded")
        assert plugin.shutdown(grace=2) == 0

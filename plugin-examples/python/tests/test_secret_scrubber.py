"""secret-scrubber: the scrubbing rules, the config checks, and the plugin
as a real process."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from outboard_example_plugins.secret_scrubber import PRIORITY, SecretScrubber
from outboard_plugin import PluginError
from outboard_plugin.testing import Harness, RunningPlugin

from .conftest import script

ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/root",
    "GITHUB_TOKEN": "ghp_abc",
    "aws_secret_access_key": "wJalr",
    "DB_PASSWORD": "hunter2",
    "API_KEY": "k-123",
    "KEYBOARD": "us",
    "BUILD_ID": "ci-42",
}


def job(env: dict[str, Any]) -> dict[str, Any]:
    return {"job_id": "j-1", "command": ["make"], "env": env, "metadata": {"policy_gate": {"checked": 3}}}


def harness(config: dict[str, Any] | None = None) -> Harness:
    h = Harness(SecretScrubber())
    h.configure(config or {})
    return h


def test_default_patterns_redact_secret_looking_names_case_insensitively() -> None:
    out = harness().invoke("pre_container", job(ENV))
    assert out.context["env"] == {
        **ENV,
        "GITHUB_TOKEN": "[redacted]",
        "aws_secret_access_key": "[redacted]",
        "DB_PASSWORD": "[redacted]",
        "API_KEY": "[redacted]",
    }
    scrubbed = ["API_KEY", "DB_PASSWORD", "GITHUB_TOKEN", "aws_secret_access_key"]
    assert out.context["metadata"] == {"policy_gate": {"checked": 3}, "secret_scrubber": {"scrubbed": scrubbed}}
    assert out.reply.message == "scrubbed 4 variables: API_KEY, DB_PASSWORD, GITHUB_TOKEN, aws_secret_access_key"
    # Names only: no value reaches the metadata or the message.
    assert "hunter2" not in repr(out.context["metadata"]) + out.reply.message


def test_scrubbing_twice_is_scrubbing_once() -> None:
    h = harness()
    once = h.invoke("pre_container", job(ENV)).context
    twice = h.invoke("pre_container", once)
    assert twice.context == once
    assert [op.path for op in twice.reply.patch()] == ["/metadata/secret_scrubber"]


def test_globs_regexes_keep_replacement_and_remove() -> None:
    config = {
        "patterns": ["re:^(GITHUB|DB)_.*", "*KEY*"],
        "keep": ["KEYBOARD"],
        "replacement": "***",
    }
    out = harness(config).invoke("pre_container", job(ENV))
    env = out.context["env"]
    assert (env["GITHUB_TOKEN"], env["DB_PASSWORD"], env["API_KEY"], env["aws_secret_access_key"]) == ("***",) * 4
    assert env["KEYBOARD"] == "us"

    out = harness({"remove": True}).invoke("pre_container", job(ENV))
    assert sorted(out.context["env"]) == ["BUILD_ID", "HOME", "KEYBOARD", "PATH"]


def test_names_with_slashes_and_tildes_are_escaped() -> None:
    out = harness().invoke("pre_container", job({"A/B_TOKEN": "x", "M~N_SECRET": "y"}))
    assert out.context["env"] == {"A/B_TOKEN": "[redacted]", "M~N_SECRET": "[redacted]"}
    assert [op.path for op in out.reply.patch()][:2] == ["/env/A~1B_TOKEN", "/env/M~0N_SECRET"]


def test_nothing_to_scrub_still_records_that_it_ran() -> None:
    out = harness().invoke("pre_container", job({"PATH": "/bin"}))
    assert out.context["metadata"]["secret_scrubber"] == {"scrubbed": []}
    assert out.reply.message == "nothing to scrub"


@pytest.mark.parametrize(
    "config, says",
    [
        ({"patterns": ["re:(unclosed"]}, "patterns[0]: 're:(unclosed' is not a regular expression"),
        ({"patterns": []}, "patterns: is empty"),
        ({"patterns": "*TOKEN*"}, "patterns: expected an array"),
        ({"keep": [""]}, "keep[0]: expected a non-empty string"),
        ({"replacement": 3}, "replacement: expected a string"),
        ({"remove": "yes"}, "remove: expected true or false"),
        ({"colour": "red"}, "unknown key 'colour'"),
    ],
)
def test_bad_config_is_invalid_argument_naming_the_key(config: dict[str, Any], says: str) -> None:
    with pytest.raises(PluginError) as raised:
        harness(config)
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert says in raised.value.message


def test_without_env_write_it_refuses_to_start() -> None:
    h = Harness(SecretScrubber())
    with pytest.raises(PluginError) as raised:
        h.configure({}, granted=[])
    assert raised.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "'env:write' was not granted" in raised.value.message


def test_a_context_without_env_is_invalid_argument() -> None:
    for context, says in [({}, "/env is missing"), ({"env": "PATH=/bin"}, "/env is str, not an object")]:
        with pytest.raises(PluginError) as raised:
            harness().invoke("pre_container", context)
        assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert says in raised.value.message
    # A phase it did not subscribe to: go on, no change.
    assert harness().invoke("cleanup", {}).reply.patch() == []


def test_manifest_runs_after_env_injector_with_a_closed_schema() -> None:
    m = Harness(SecretScrubber()).manifest
    sub = m.subscription_for("pre_container")
    assert sub is not None and (sub.priority, sub.idempotent) == (PRIORITY, True)
    assert PRIORITY > 10
    assert [p.name for p in m.permissions] == ["env:write"]
    assert m.schema is not None and m.schema["additionalProperties"] is False


def test_the_installed_command_scrubs_over_its_socket() -> None:
    with RunningPlugin([script("secret-scrubber")]) as plugin:
        assert plugin.line == f"outboard|1|unix|{plugin.socket}|grpc"
        plugin.configure({"keep": ["KEYBOARD"]})
        out = plugin.invoke("pre_container", job(ENV))
        assert out.context["env"]["DB_PASSWORD"] == "[redacted]"
        assert out.context["env"]["BUILD_ID"] == "ci-42"
        assert plugin.shutdown(grace=2) == 0

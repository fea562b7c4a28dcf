"""A plugin for the SDK's own tests, started as a real process.

It subscribes to ``pre_container`` and answers from its context:

- ``metadata.sample.started``: a file to create as soon as the call starts,
  so that a test knows the call is in flight;
- ``metadata.sample.sleep``: seconds to sleep first, blocking its worker
  thread (for deadline and shutdown tests);
- ``metadata.sample.wait_for``: a file to wait for (polling, blocking its
  worker thread) before answering, so that a test decides when the call ends;
- ``metadata.sample.finished``: a file to create when the call is done
  waiting and sleeping;
- ``metadata.sample.unhealthy``: report ``NOT_SERVING`` (ask for a restart);
- ``metadata.sample.abort``: a message to abort with;
- ``metadata.sample.fail``: a message to fail with (``INVALID_ARGUMENT``);
- ``metadata.sample.child_env``: start ``env`` as a child and set
  ``/metadata/child_env`` to the names of the variables it saw;
- otherwise it sets ``/env/GREETING`` to ``hello, <USER>``.

Its config schema accepts ``greeting`` (a string) and nothing else. With
``SAMPLE_FASTPATH=off`` in its environment it declines the invoke fast path
(``run(..., fastpath=False)``).
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

from outboard_plugin import Config, Health, Invocation, Manifest, Plugin, PluginError, Reply, run


def mark_started(sample: dict[str, Any]) -> None:
    """Creates the file ``metadata.sample.started`` names, if it names one."""
    if "started" in sample:
        with open(str(sample["started"]), "x"):
            pass


class Sample(Plugin):
    def __init__(self) -> None:
        self.greeting = "hello"
        self.health: Health | None = None

    def manifest(self) -> Manifest:
        return (
            Manifest("sample", "0.1.0")
            .describe("The SDK's test plugin")
            .subscribe_idempotent("pre_container", 5)
            .permission("env:write", "to set GREETING")
            .config_schema(
                {
                    "type": "object",
                    "properties": {"greeting": {"type": "string"}},
                    "additionalProperties": False,
                }
            )
        )

    def configure(self, config: Config) -> None:
        config.check_keys({"greeting"})
        greeting = config.get("greeting", "hello")
        if not isinstance(greeting, str):
            raise PluginError.invalid_config(f"greeting: expected a string, got {greeting!r}")
        self.greeting = greeting
        self.health = config.health

    def invoke(self, invocation: Invocation) -> Reply:
        sample: Any = invocation.get("/metadata/sample", {})
        if not isinstance(sample, dict):
            sample = {}
        mark_started(sample)
        if "wait_for" in sample:
            while not os.path.exists(str(sample["wait_for"])):
                time.sleep(0.005)
        if "sleep" in sample:
            time.sleep(float(sample["sleep"]))
        if "finished" in sample:
            with open(str(sample["finished"]), "x"):
                pass
        if "unhealthy" in sample and self.health is not None:
            self.health.set_serving(False)
        if "abort" in sample:
            return Reply.abort(str(sample["abort"]))
        if "fail" in sample:
            raise PluginError.invalid_context(str(sample["fail"]))
        if "child_env" in sample:
            seen = subprocess.run(["env"], capture_output=True, text=True, check=True).stdout
            names = sorted(line.split("=", 1)[0] for line in seen.splitlines() if "=" in line)
            return Reply.ok().set("/metadata/child_env", names)
        user = invocation.env("USER") or "world"
        return Reply.ok().set("/env/GREETING", f"{self.greeting}, {user}").with_message("greeted")


if __name__ == "__main__":
    raise SystemExit(run(Sample(), fastpath=os.environ.get("SAMPLE_FASTPATH") != "off"))

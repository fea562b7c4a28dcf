"""Shared fixtures: the sample plugin started as a host would start it."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from outboard_plugin.testing import RunningPlugin

SAMPLE = Path(__file__).parent / "plugins" / "sample.py"
COOKIE = "0b7f4a8e-outboard-plugin"


def host_env(socket: str, token: str, versions: str = "1") -> dict[str, str]:
    """The environment a host gives a plugin: a few inherited variables and
    the handshake variables."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(
        OUTBOARD_MAGIC_COOKIE=COOKIE,
        OUTBOARD_PROTOCOL_VERSIONS=versions,
        OUTBOARD_SOCKET=socket,
        OUTBOARD_TOKEN=token,
        OUTBOARD_PLUGIN_NAME="sample-under-test",
    )
    return env


def wait_for_file(path: Path, timeout: float = 10) -> None:
    """Polls until ``path`` exists (the sample plugin creates it when a call
    starts); fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.01)


@pytest.fixture
def runtime_dir() -> Iterator[str]:
    """A private directory with a short path, as the host makes one (0700)."""
    path = tempfile.mkdtemp(prefix="obt-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def sample() -> Iterator[RunningPlugin]:
    """The sample plugin, started and past its handshake; its process group
    is killed after the test if it is still running."""
    with RunningPlugin([sys.executable, str(SAMPLE)]) as plugin:
        yield plugin

"""Where the installed console scripts are, and a webhook on 127.0.0.1 for
the notifiers' tests."""

from __future__ import annotations

import http.server
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def script(name: str) -> str:
    """The console script ``name`` beside this interpreter; fails (does not
    skip) if the examples are not installed."""
    path = Path(sys.executable).parent / name
    assert path.is_file(), (
        f"{path} is missing: install the examples with scripts/tools "
        "(pip install -e plugin-sdk-py -e plugin-examples/python)"
    )
    return str(path)


class Hook:
    """A webhook on 127.0.0.1 that records what it receives and answers ``status``."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                hook.received.append((self.path, dict(self.headers), body))
                time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()

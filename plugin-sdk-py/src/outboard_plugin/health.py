"""The plugin's health service (PROTOCOL.md §10): ``SERVING`` from the start,
``NOT_SERVING`` once the plugin stops or asks for a restart."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from grpc_health.v1._async import HealthServicer


class Health:
    """A handle on the plugin's health service, handed to the plugin in
    :attr:`Config.health <outboard_plugin.Config.health>`.

    Call ``set_serving(False)`` to ask the host for a restart (it restarts
    the plugin after a few missed checks); ``set_serving(True)`` before then
    cancels the request. A ``Health()`` made by hand (as in tests) is
    attached to no server and only remembers the status.
    """

    def __init__(self) -> None:
        self._serving = True
        self._servicer: HealthServicer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _attach(self, servicer: HealthServicer, loop: asyncio.AbstractEventLoop) -> None:
        self._servicer = servicer
        self._loop = loop

    @property
    def serving(self) -> bool:
        """``True`` while the status for ``""`` is ``SERVING``."""
        return self._serving

    def set_serving(self, serving: bool) -> None:
        """Sets the status for ``""`` (the whole server). Safe to call from
        any thread."""
        self._serving = serving
        if self._servicer is None or self._loop is None:
            return
        from grpc_health.v1 import health_pb2

        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        servicer = self._servicer
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._loop.create_task(servicer.set("", status))
        elif not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(servicer.set("", status), self._loop)

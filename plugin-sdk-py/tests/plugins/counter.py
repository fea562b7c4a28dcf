"""A plugin using host services: ``pre_container`` counts its runs in the
shared namespace ``jobs`` with compare-and-set; ``job.*`` events are counted
in its own namespace by an ``async def on_event``; other events reach no
handler."""

from __future__ import annotations

import asyncio

from outboard_plugin import ABSENT, Event, Invocation, Kv, Manifest, Plugin, Reply, run


def increment(kv: Kv, key: str) -> int:
    """Adds one to the decimal counter at ``key``; no update is lost to a
    concurrent writer."""
    while True:
        entry = kv.get(key)
        n = int(entry.value) if entry else 0
        if kv.compare_and_set(key, entry.value if entry else ABSENT, str(n + 1)):
            return n + 1


class Counter(Plugin):
    def manifest(self) -> Manifest:
        return (
            Manifest("counter", "0.1.0")
            .subscribe("pre_container")
            .subscribe_event("job.*")
            .permission("kv", "counts job events")
            .permission("kv:shared:jobs", "counts runs with the other plugins")
        )

    def invoke(self, invocation: Invocation) -> Reply:
        return Reply.ok().set("/metadata/runs", increment(invocation.kv().shared("jobs"), "runs"))

    async def on_event(self, event: Event) -> None:
        await asyncio.to_thread(increment, event.kv(), event.name)


if __name__ == "__main__":
    raise SystemExit(run(Counter()))

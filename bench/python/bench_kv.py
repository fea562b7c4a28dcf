"""``bench_kv.py``: the benchmark's key-value plugin written with the Python
SDK (item (o) of ``outboard-bench``), the counterpart of ``bench-services kv``.

It subscribes to ``bench_kv_py``. An invocation whose context is
``{"op": "get" | "set", "calls": N}`` makes N calls of that kind to the
host's key-value store through the SDK's client (own namespace, key
``bench``, a 64-byte value), one after another, and answers with each call's
time in nanoseconds at ``/bench/ns``. The harness runs it with the
repository's venv and this tree's SDK first on ``PYTHONPATH``.
"""

from __future__ import annotations

import time

from outboard_plugin import Invocation, Manifest, Plugin, PluginError, Reply, run

PHASE = "bench_kv_py"
KEY = "bench"
VALUE = b"x" * 64


class BenchKv(Plugin):
    """Times the SDK's key-value calls to the host."""

    def manifest(self) -> Manifest:
        return (
            Manifest("bench-kv-py", "0.1.0")
            .describe("Times host-service key-value calls, for benchmarks")
            .subscribe(PHASE, 10)
            .permission("kv", "the key-value calls it times")
        )

    def invoke(self, invocation: Invocation) -> Reply:
        op = invocation.get("/op")
        calls = int(invocation.get("/calls", 0))
        if op not in ("get", "set"):
            raise PluginError.invalid_context(f"op must be get or set, not {op!r}")
        kv = invocation.kv()
        if op == "get" and kv.get(KEY) is None:
            kv.set(KEY, VALUE)
        took = []
        clock = time.perf_counter_ns
        for _ in range(calls):
            started = clock()
            if op == "get":
                if kv.get(KEY) is None:
                    raise PluginError.internal("the key written before is gone")
            else:
                kv.set(KEY, VALUE)
            took.append(clock() - started)
        return Reply.ok().set("/bench/ns", took)


if __name__ == "__main__":
    raise SystemExit(run(BenchKv()))

"""The sample plugin with an ``async def invoke`` (run on the event loop, not
in a worker thread): ``metadata.sample.sleep`` awaits ``asyncio.sleep``,
``metadata.sample.wait_for`` awaits until that file exists, and a cancelled
call logs ``invoke cancelled`` and creates the file
``metadata.sample.cancelled`` names, if any, before it ends. ``started``
works as in the sample."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from sample import Sample, mark_started  # noqa: E402

from outboard_plugin import Invocation, Reply, run  # noqa: E402

log = logging.getLogger("sample_async")


class AsyncSample(Sample):
    async def invoke(self, invocation: Invocation) -> Reply:  # type: ignore[override]
        sample = invocation.get("/metadata/sample", {})
        if isinstance(sample, dict) and ("sleep" in sample or "wait_for" in sample):
            mark_started(sample)
            try:
                while "wait_for" in sample and not os.path.exists(str(sample["wait_for"])):
                    await asyncio.sleep(0.005)
                await asyncio.sleep(float(sample.get("sleep", 0)))
            except asyncio.CancelledError:
                log.warning("invoke cancelled")
                if "cancelled" in sample:
                    with open(str(sample["cancelled"]), "x"):
                        pass
                raise
            return Reply.ok().with_message("slept")
        return Sample.invoke(self, invocation)


if __name__ == "__main__":
    raise SystemExit(run(AsyncSample()))

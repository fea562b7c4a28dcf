"""The worker threads that run plain ``def`` plugin methods.

A :class:`concurrent.futures.ThreadPoolExecutor` would do, and did, but it
costs each call a handful of Python-level lock and condition operations
after the method returns (its future, its idle semaphore), while the event
loop, already woken by the method's result, waits for the GIL. A call to a
plain ``def`` ``invoke`` paid for that hop twice what this pool costs
(DECISIONS.md, "Python SDK"). This pool does the same with one queue: a
worker runs the function and goes straight back to the queue.

It is an :class:`~concurrent.futures.Executor` (``loop.run_in_executor``
takes it); :meth:`WorkerPool.call` is the cheaper fire-and-forget form the
``Invoke`` path uses, where the function reports its own result.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

T = TypeVar("T")


class WorkerPool(Executor):
    """Up to ``max_workers`` threads named ``<thread_name_prefix>_<n>``
    (by default as many as ``ThreadPoolExecutor`` would start), started when
    a call finds none idle, and kept until :meth:`shutdown`."""

    def __init__(self, max_workers: int | None = None, thread_name_prefix: str = "worker") -> None:
        #: The most threads at once (``ThreadPoolExecutor``'s default).
        self.max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self._prefix = thread_name_prefix
        self._queue: queue.SimpleQueue[tuple[Callable[..., object], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        #: Threads waiting on the queue and not yet promised a call.
        self._idle = 0
        self._shutdown = False

    def call(self, fn: Callable[..., object], *args: Any) -> None:
        """Runs ``fn(*args)`` in a worker thread; what it returns is dropped
        and what it raises is ignored, so ``fn`` reports its own outcome."""
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new calls after shutdown")
            if self._idle > 0:
                self._idle -= 1
            elif len(self._threads) < self.max_workers:
                # A daemon: a call still blocked when the process exits does
                # not hold it up (the host is waiting for the exit).
                thread = threading.Thread(target=self._work, name=f"{self._prefix}_{len(self._threads)}", daemon=True)
                thread.start()
                self._threads.append(thread)
            self._queue.put((fn, args))

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        submitted = _Submitted(fn, args, kwargs)
        self.call(submitted)
        return submitted.future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new calls; idle threads exit, busy ones when their call
        returns. ``cancel_futures`` drops the calls not started yet
        (cancelling their futures); ``wait`` joins the threads."""
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None and isinstance(item[0], _Submitted):
                        item[0].future.cancel()
            threads = list(self._threads)
            for _ in threads:
                self._queue.put(None)
        if wait:
            for thread in threads:
                thread.join()

    def _work(self) -> None:
        get = self._queue.get
        while True:
            item = get()
            if item is None:
                return
            try:
                item[0](*item[1])
            except BaseException:  # the function reports its own outcome
                pass
            del item
            with self._lock:
                self._idle += 1


class _Submitted:
    """A call made with :meth:`WorkerPool.submit`: its future gets what it returns."""

    __slots__ = ("future", "_fn", "_args", "_kwargs")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.future: Future[Any] = Future()
        self._fn = fn
        self._args = args
        self._kwargs = kwargs

    def __call__(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self._fn(*self._args, **self._kwargs)
        except BaseException as e:
            self.future.set_exception(e)
        else:
            self.future.set_result(result)

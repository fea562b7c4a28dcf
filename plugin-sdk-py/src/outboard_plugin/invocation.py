"""What ``Invoke`` hands a plugin: one phase of one job (PROTOCOL.md §8.4)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .host import HasHost, HostServices
from .patch import PatchError, parse


@dataclass
class Invocation(HasHost):
    """One call for one phase: which phase, which attempt, until when, and
    the phase context."""

    #: The phase being run, e.g. ``pre_container``.
    phase: str
    #: The phase context: for the job phases ``command``, ``env``,
    #: ``metadata``, and later ``exit_code`` and ``error``.
    context: dict[str, Any] = field(default_factory=dict)
    #: Unique per dispatch of a phase; the same across retries.
    invocation_id: str = ""
    #: 1 for the first try, 2 for the first retry, and so on.
    attempt: int = 1
    #: When the host gives up on this call (seconds since the epoch, the
    #: earlier of the gRPC deadline and ``InvokeRequest.deadline``), if it
    #: said. The SDK answers ``DEADLINE_EXCEEDED`` at this instant.
    deadline: float | None = None
    #: W3C trace context (``traceparent``, ``tracestate``), when the host has one.
    trace_context: dict[str, str] = field(default_factory=dict)
    #: The host's services (PROTOCOL.md §17): ``invocation.kv()``, ...
    host: HostServices = field(default_factory=HostServices, compare=False, repr=False)

    def get(self, path: str, default: Any = None) -> Any:
        """The value at an RFC 6901 JSON Pointer into the context, e.g.
        ``/metadata/job_timer/started_at``; ``default`` if absent or if
        ``path`` is not a pointer."""
        try:
            tokens = parse(path)
        except PatchError:
            return default
        at: Any = self.context
        for token in tokens:
            if isinstance(at, dict) and token in at:
                at = at[token]
            elif isinstance(at, list) and token.isdigit() and int(token) < len(at):
                at = at[int(token)]
            else:
                return default
        return at

    def env(self, name: str) -> str | None:
        """The variable ``name`` of the job's environment (``/env/<name>``),
        if it is set to a string."""
        env = self.context.get("env")
        value = env.get(name) if isinstance(env, dict) else None
        return value if isinstance(value, str) else None

    def time_left(self) -> float | None:
        """Seconds until :attr:`deadline` (0 once it has passed), or ``None``
        without one. Bound blocking work (HTTP requests, subprocesses) by it."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.time())

"""What a plugin answers to ``Invoke``: go on (with a patch to the context)
or abort (with a reason)."""

from __future__ import annotations

import enum
from typing import Any

from ._proto import plugin_pb2
from .errors import PluginError
from .jsonvalue import check_json, fill_value
from .patch import PatchError, PatchOp, parse


class Outcome(enum.Enum):
    """What the plugin decided about the phase."""

    #: Go on, applying the reply's patch.
    CONTINUE = "continue"
    #: Veto the phase; the reply's message says why.
    ABORT = "abort"


class Reply:
    """The answer to one invocation: an :class:`Outcome`, a patch to the
    context and an optional message. Methods return the reply, so they chain::

        Reply.ok().set("/env/BUILD_ID", "ci-42").remove("/env/DEBUG").with_message("build id set")

    Building never raises: an invalid JSON Pointer (or a value that is not
    JSON) is kept, and the call then fails with ``INTERNAL`` naming it, the
    same way in :mod:`outboard_plugin.testing` as over gRPC.
    """

    __slots__ = ("_outcome", "_patch", "_message", "_invalid")

    def __init__(self, outcome: Outcome = Outcome.CONTINUE, message: str = "") -> None:
        self._outcome = outcome
        self._patch: list[PatchOp] = []
        self._message = message
        #: The first problem found by ``set`` or ``remove``.
        self._invalid: str | None = None

    @staticmethod
    def ok() -> Reply:
        """Continue, with no changes yet."""
        return Reply()

    @staticmethod
    def abort(message: str) -> Reply:
        """Veto the phase, saying why (the message is required)."""
        return Reply(Outcome.ABORT, message)

    def set(self, path: str, value: Any) -> Reply:
        """Sets the value at ``path`` (RFC 6901, e.g. ``/env/BUILD_ID``),
        creating parent objects as needed. Build paths from keys that may
        hold ``/`` or ``~`` with :func:`~outboard_plugin.pointer`."""
        return self._push(PatchOp("set", path, value))

    def remove(self, path: str) -> Reply:
        """Removes the value at ``path``; removing what is absent is fine."""
        return self._push(PatchOp("remove", path))

    def with_message(self, message: str) -> Reply:
        """Sets the message shown in the host's report."""
        self._message = message
        return self

    def _push(self, op: PatchOp) -> Reply:
        try:
            parse(op.path)
            if op.op == "set":
                check_json(op.value)
        except (PatchError, TypeError) as e:
            if self._invalid is None:
                self._invalid = str(e) if isinstance(e, PatchError) else f"the value for {op.path}: {e}"
            return self
        self._patch.append(op)
        return self

    @property
    def outcome(self) -> Outcome:
        """Continue or abort."""
        return self._outcome

    @property
    def message(self) -> str:
        """The message, empty if none was set."""
        return self._message

    def patch(self) -> list[PatchOp]:
        """The patch operations in order; raises :class:`PluginError`
        (``INTERNAL``) for the first invalid one."""
        if self._invalid is not None:
            raise PluginError.internal(f"the plugin built an invalid patch: {self._invalid}")
        return list(self._patch)

    def to_proto(self) -> plugin_pb2.InvokeResponse:
        """The reply's wire form; raises :class:`PluginError` for an invalid
        patch or an abort without a message."""
        ops = self.patch()
        if self._outcome is Outcome.ABORT:
            if not self._message.strip():
                raise PluginError.internal("the plugin aborted without a message; an abort must say why")
            outcome = plugin_pb2.OUTCOME_ABORT
        else:
            outcome = plugin_pb2.OUTCOME_CONTINUE
        response = plugin_pb2.InvokeResponse(outcome=outcome, message=self._message)
        for op in ops:
            if op.op == "set":
                fill_value(response.patch.add(path=op.path, op=plugin_pb2.PATCH_OP_SET).value, op.value)
            else:
                response.patch.add(path=op.path, op=plugin_pb2.PATCH_OP_REMOVE)
        return response

    def __repr__(self) -> str:
        return f"Reply(outcome={self._outcome.name}, patch={self._patch!r}, message={self._message!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Reply):
            return NotImplemented
        return (self._outcome, self._patch, self._message, self._invalid) == (
            other._outcome,
            other._patch,
            other._message,
            other._invalid,
        )

    __hash__ = None  # type: ignore[assignment]

"""The token check in front of ``PluginService`` (PROTOCOL.md §7): every call
must carry exactly one ``authorization: Bearer <OUTBOARD_TOKEN>``, so that
other local processes cannot drive the plugin."""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import grpc.aio

#: The metadata key carrying the token.
TOKEN_METADATA_KEY = "authorization"
#: What comes before the token in its value.
TOKEN_SCHEME = "Bearer "
#: The method prefix the check applies to. Health and reflection drive
#: nothing and are served without it (§7 allows both).
PLUGIN_SERVICE_PREFIX = "/outboard.v1.PluginService/"


def token_problem(metadata: Sequence[tuple[str, str | bytes]] | None, token: str) -> str | None:
    """Why ``metadata`` does not carry ``token`` as §7 asks, or ``None`` if it does."""
    values = [value for key, value in (metadata or ()) if key.lower() == TOKEN_METADATA_KEY]
    if not values:
        return (
            f"missing `{TOKEN_METADATA_KEY}` metadata: every PluginService call must carry "
            f"`{TOKEN_METADATA_KEY}: {TOKEN_SCHEME}<OUTBOARD_TOKEN>`"
        )
    if len(values) > 1:
        return f"`{TOKEN_METADATA_KEY}` metadata given {len(values)} times: exactly one is accepted"
    value = values[0]
    presented = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
    if not presented.startswith(TOKEN_SCHEME.encode()):
        return f"malformed `{TOKEN_METADATA_KEY}` metadata: expected `{TOKEN_SCHEME}<OUTBOARD_TOKEN>`"
    # hmac.compare_digest takes the same time wherever the first difference is.
    if not hmac.compare_digest(presented[len(TOKEN_SCHEME) :], token.encode()):
        return f"wrong token in `{TOKEN_METADATA_KEY}` metadata: it is not this launch's OUTBOARD_TOKEN"
    return None


class TokenGate(grpc.GenericRpcHandler):
    """Serves ``PluginService``'s methods (``handlers``, by full method name)
    to calls carrying the launch token, and refuses the others with
    ``UNAUTHENTICATED`` before the handler runs (the request is not read).

    A generic handler rather than a ``grpc.aio`` server interceptor: the
    server calls it synchronously while it looks the method up, where an
    interceptor is a coroutine awaited on every call, health checks
    included. Register it before any other generic handler, and do not
    register the same methods with ``add_registered_method_handlers``
    (registered methods are looked up first and would skip the check).
    """

    def __init__(self, token: str, handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]) -> None:
        self._token = token
        self._handlers = dict(handlers)

    def __repr__(self) -> str:
        return f"TokenGate(<redacted>, {sorted(self._handlers)})"

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any] | None:
        method: str = handler_call_details.method
        if not method.startswith(PLUGIN_SERVICE_PREFIX):
            return None
        metadata: Any = handler_call_details.invocation_metadata
        problem = token_problem(metadata, self._token)
        if problem is not None:
            return _refuse(problem)
        # None for a method the service does not have: UNIMPLEMENTED.
        return self._handlers.get(method)


def _refuse(message: str) -> grpc.RpcMethodHandler[Any, Any]:
    async def refuse(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    # No deserializer: the request is never read.
    return grpc.unary_unary_rpc_method_handler(refuse)

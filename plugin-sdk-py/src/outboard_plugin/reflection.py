"""gRPC server reflection (PROTOCOL.md §1.2, §14), loaded on first use.

Importing ``grpc_reflection`` costs more start-up time than anything else in
the SDK, for a service only a person with ``grpcurl`` ever calls. So the
server registers this small handler instead, which imports and builds the
real reflection servicer at the first reflection call.
"""

from __future__ import annotations

from typing import Any

import grpc

#: The reflection method names this handler answers.
_METHOD = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
#: The reflection service's own name, listed with the others.
SERVICE_NAME = "grpc.reflection.v1alpha.ServerReflection"


class LazyReflection(grpc.GenericRpcHandler):
    """Serves ``grpc.reflection.v1alpha.ServerReflection`` for ``service_names``."""

    def __init__(self, service_names: list[str]) -> None:
        self._names = [*service_names, SERVICE_NAME]
        self._handler: grpc.RpcMethodHandler[Any, Any] | None = None

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any] | None:
        method: str = handler_call_details.method
        if method != _METHOD:
            return None
        if self._handler is None:
            from grpc_reflection.v1alpha import _async, reflection_pb2

            servicer = _async.ReflectionServicer(self._names)
            self._handler = grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        return self._handler

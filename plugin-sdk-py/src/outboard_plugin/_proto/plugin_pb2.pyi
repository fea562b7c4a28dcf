import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_CONTINUE: _ClassVar[Outcome]
    OUTCOME_ABORT: _ClassVar[Outcome]

class PatchOp(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PATCH_OP_UNSPECIFIED: _ClassVar[PatchOp]
    PATCH_OP_SET: _ClassVar[PatchOp]
    PATCH_OP_REMOVE: _ClassVar[PatchOp]
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_CONTINUE: Outcome
OUTCOME_ABORT: Outcome
PATCH_OP_UNSPECIFIED: PatchOp
PATCH_OP_SET: PatchOp
PATCH_OP_REMOVE: PatchOp

class DescribeRequest(_message.Message):
    __slots__ = ("host_protocol_versions", "host_version")
    HOST_PROTOCOL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    HOST_VERSION_FIELD_NUMBER: _ClassVar[int]
    host_protocol_versions: _containers.RepeatedScalarFieldContainer[int]
    host_version: str
    def __init__(self, host_protocol_versions: _Optional[_Iterable[int]] = ..., host_version: _Optional[str] = ...) -> None: ...

class DescribeResponse(_message.Message):
    __slots__ = ("manifest",)
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    manifest: Manifest
    def __init__(self, manifest: _Optional[_Union[Manifest, _Mapping]] = ...) -> None: ...

class Manifest(_message.Message):
    __slots__ = ("name", "version", "protocol_version", "description", "features", "subscriptions", "permissions", "dependencies", "config_schema", "event_subscriptions")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    CONFIG_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    EVENT_SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    protocol_version: int
    description: str
    features: _containers.RepeatedScalarFieldContainer[str]
    subscriptions: _containers.RepeatedCompositeFieldContainer[Subscription]
    permissions: _containers.RepeatedCompositeFieldContainer[Permission]
    dependencies: _containers.RepeatedCompositeFieldContainer[Dependency]
    config_schema: _struct_pb2.Struct
    event_subscriptions: _containers.RepeatedCompositeFieldContainer[EventSubscription]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., protocol_version: _Optional[int] = ..., description: _Optional[str] = ..., features: _Optional[_Iterable[str]] = ..., subscriptions: _Optional[_Iterable[_Union[Subscription, _Mapping]]] = ..., permissions: _Optional[_Iterable[_Union[Permission, _Mapping]]] = ..., dependencies: _Optional[_Iterable[_Union[Dependency, _Mapping]]] = ..., config_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., event_subscriptions: _Optional[_Iterable[_Union[EventSubscription, _Mapping]]] = ...) -> None: ...

class Subscription(_message.Message):
    __slots__ = ("phase", "priority", "idempotent")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENT_FIELD_NUMBER: _ClassVar[int]
    phase: str
    priority: int
    idempotent: bool
    def __init__(self, phase: _Optional[str] = ..., priority: _Optional[int] = ..., idempotent: _Optional[bool] = ...) -> None: ...

class EventSubscription(_message.Message):
    __slots__ = ("pattern",)
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    pattern: str
    def __init__(self, pattern: _Optional[str] = ...) -> None: ...

class Permission(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Dependency(_message.Message):
    __slots__ = ("name", "version_req", "optional")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_REQ_FIELD_NUMBER: _ClassVar[int]
    OPTIONAL_FIELD_NUMBER: _ClassVar[int]
    name: str
    version_req: str
    optional: bool
    def __init__(self, name: _Optional[str] = ..., version_req: _Optional[str] = ..., optional: _Optional[bool] = ...) -> None: ...

class ConfigureRequest(_message.Message):
    __slots__ = ("config", "granted_permissions", "protocol_version", "instance_name")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    GRANTED_PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_NAME_FIELD_NUMBER: _ClassVar[int]
    config: _struct_pb2.Struct
    granted_permissions: _containers.RepeatedScalarFieldContainer[str]
    protocol_version: int
    instance_name: str
    def __init__(self, config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., granted_permissions: _Optional[_Iterable[str]] = ..., protocol_version: _Optional[int] = ..., instance_name: _Optional[str] = ...) -> None: ...

class ConfigureResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InvokeRequest(_message.Message):
    __slots__ = ("phase", "invocation_id", "attempt", "deadline", "trace_context", "context")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PHASE_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    phase: str
    invocation_id: str
    attempt: int
    deadline: _timestamp_pb2.Timestamp
    trace_context: _containers.ScalarMap[str, str]
    context: _struct_pb2.Struct
    def __init__(self, phase: _Optional[str] = ..., invocation_id: _Optional[str] = ..., attempt: _Optional[int] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trace_context: _Optional[_Mapping[str, str]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class InvokeResponse(_message.Message):
    __slots__ = ("outcome", "patch", "message")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    PATCH_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    outcome: Outcome
    patch: _containers.RepeatedCompositeFieldContainer[PatchOperation]
    message: str
    def __init__(self, outcome: _Optional[_Union[Outcome, str]] = ..., patch: _Optional[_Iterable[_Union[PatchOperation, _Mapping]]] = ..., message: _Optional[str] = ...) -> None: ...

class PatchOperation(_message.Message):
    __slots__ = ("op", "path", "value")
    OP_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    op: PatchOp
    path: str
    value: _struct_pb2.Value
    def __init__(self, op: _Optional[_Union[PatchOp, str]] = ..., path: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class ShutdownRequest(_message.Message):
    __slots__ = ("grace", "reason")
    GRACE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    grace: _duration_pb2.Duration
    reason: str
    def __init__(self, grace: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class ShutdownResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FastpathHello(_message.Message):
    __slots__ = ("token", "version")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    token: str
    version: int
    def __init__(self, token: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class FastpathInvoke(_message.Message):
    __slots__ = ("request", "timeout")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    request: InvokeRequest
    timeout: _duration_pb2.Duration
    def __init__(self, request: _Optional[_Union[InvokeRequest, _Mapping]] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class FastpathError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

"""The plugin's manifest: what ``Describe`` answers, built with a small
builder and checked against the same rules the host applies
(PROTOCOL.md §8.2). ``proto/testdata/manifest-cases.json`` is the table of
cases this check and the host's (``outboard_proto::manifest::check``) both
pass, so the SDK refuses exactly the manifests the host refuses."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._proto import plugin_pb2
from .jsonvalue import dict_to_struct

#: The longest plugin or phase name.
MAX_NAME_LEN = 64

_PLUGIN_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_PHASE_NAME = re.compile(r"[a-z0-9_.-]{1,64}")
# semver.org's regular expression for SemVer 2.0.
_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?",
    re.ASCII,
)
# One comparator of a requirement: an operator and a version that may stop
# after the major or minor part, or end in a wildcard.
_COMPARATOR = re.compile(
    r"\s*(?:=|>=|<=|>|<|~|\^)?\s*(?:\*|[xX]|\d+(?:\.(?:\*|[xX]|\d+)(?:\.(?:\*|[xX]|\d+))?)?)"
    r"(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?\s*",
    re.ASCII,
)


def is_valid_plugin_name(name: str) -> bool:
    """``^[a-z0-9][a-z0-9_-]{0,63}$``."""
    return _PLUGIN_NAME.fullmatch(name) is not None


def is_valid_phase_name(phase: str) -> bool:
    """``^[a-z0-9_.-]{1,64}$``."""
    return _PHASE_NAME.fullmatch(phase) is not None


def is_semver(version: str) -> bool:
    """True for a full SemVer 2.0 version (``1.4.0``, not ``1.4`` or ``v1.4.0``)."""
    return _SEMVER.fullmatch(version) is not None


def is_version_req(req: str) -> bool:
    """True for a SemVer requirement of comma-separated comparators
    (``>=1.2, <2``, ``^1.4``, ``~0.3.1``, ``1.2``)."""
    return all(_COMPARATOR.fullmatch(part) for part in req.split(","))


@dataclass(frozen=True)
class Subscription:
    """A plugin's interest in one phase."""

    #: The phase name, e.g. ``pre_container``.
    phase: str
    #: Lower runs first in sequential phases; ties are broken by plugin name.
    priority: int = 0
    #: ``True`` if invoking the plugin twice for one invocation is harmless.
    idempotent: bool = False


@dataclass(frozen=True)
class Permission:
    """A permission the plugin asks for."""

    #: The permission, e.g. ``env:write``.
    name: str
    #: Why the plugin needs it, shown to the operator.
    reason: str = ""


@dataclass(frozen=True)
class Dependency:
    """Another plugin this one needs."""

    #: The other plugin's manifest name.
    name: str
    #: A SemVer requirement on its version, e.g. ``>=1.2, <2``; empty for any.
    version_req: str = ""
    #: ``True`` if the plugin works without it.
    optional: bool = False


@dataclass(frozen=True)
class FieldError:
    """One thing wrong with a manifest: the field's path and why."""

    #: The field's path in the manifest, e.g. ``subscriptions[1].phase``.
    field: str
    #: What is wrong with it, quoting the value.
    why: str

    def __str__(self) -> str:
        return f"{self.field}: {self.why}"


class ManifestError(ValueError):
    """Everything wrong with a manifest, one entry per problem, each naming the field."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        #: One entry per problem, in field order.
        self.errors = errors
        #: One line per problem, e.g. ``name: 'Env' is not a valid plugin name (...)``.
        self.problems = [str(e) for e in errors]


@dataclass
class Manifest:
    """What a plugin is and what it wants: its name, version, the phases it
    subscribes to, the permissions it asks for, and its config schema::

        Manifest("env-injector", "1.0.0")
            .describe("Sets BUILD_ID in the job's environment")
            .subscribe("pre_container", 10)
            .permission("env:write", "to set BUILD_ID")
            .config_schema({"type": "object"})

    The builder methods change the manifest and return it.
    """

    #: The plugin's name (``[a-z0-9_-]``, 1 to 64 characters).
    name: str
    #: The plugin's SemVer version.
    version: str
    #: One line for humans.
    description: str = ""
    #: Optional capabilities, by name.
    features: list[str] = field(default_factory=list)
    #: The phases subscribed to, in declaration order.
    subscriptions: list[Subscription] = field(default_factory=list)
    #: The permissions asked for.
    permissions: list[Permission] = field(default_factory=list)
    #: The plugins this one depends on.
    dependencies: list[Dependency] = field(default_factory=list)
    #: The JSON Schema (draft 2020-12) of the config; ``None`` accepts any object.
    schema: dict[str, Any] | None = None
    #: The event patterns subscribed to (PROTOCOL.md §17.6), in declaration order.
    event_subscriptions: list[str] = field(default_factory=list)

    def describe(self, description: str) -> Manifest:
        """Sets the one-line description shown to humans."""
        self.description = description
        return self

    def subscribe(self, phase: str, priority: int = 0, *, idempotent: bool = False) -> Manifest:
        """Subscribes to ``phase``; lower ``priority`` runs first. Pass
        ``idempotent=True`` to tell the host a retry is harmless."""
        self.subscriptions.append(Subscription(phase, priority, idempotent))
        return self

    def subscribe_idempotent(self, phase: str, priority: int = 0) -> Manifest:
        """Subscribes to ``phase`` and tells the host a retry is harmless."""
        return self.subscribe(phase, priority, idempotent=True)

    def subscribe_event(self, pattern: str) -> Manifest:
        """Subscribes to the events matching ``pattern`` (an event name, or a
        glob where ``*`` matches any run of characters: ``job.finished``,
        ``job.*``), delivered to :meth:`Plugin.on_event
        <outboard_plugin.Plugin.on_event>`. The host delivers them only if
        the operator grants ``event:subscribe:<pattern>`` (PROTOCOL.md
        §17.6), so this also asks for that permission."""
        permission = f"event:subscribe:{pattern}"
        if not any(p.name == permission for p in self.permissions):
            self.permission(permission, f"to receive {pattern} events")
        self.event_subscriptions.append(pattern)
        return self

    def feature(self, feature: str) -> Manifest:
        """Declares an optional capability by name."""
        self.features.append(feature)
        return self

    def permission(self, name: str, reason: str = "") -> Manifest:
        """Asks for a permission, saying why."""
        self.permissions.append(Permission(name, reason))
        return self

    def depends_on(self, name: str, version_req: str = "", *, optional: bool = False) -> Manifest:
        """Requires another plugin, at versions matching ``version_req`` (empty for any)."""
        self.dependencies.append(Dependency(name, version_req, optional))
        return self

    def depends_on_optional(self, name: str, version_req: str = "") -> Manifest:
        """Like :meth:`depends_on`, but the plugin also works without it."""
        return self.depends_on(name, version_req, optional=True)

    def config_schema(self, schema: Mapping[str, Any]) -> Manifest:
        """Sets the JSON Schema (draft 2020-12) the host checks the config
        against before ``Configure``. It must be a JSON object."""
        self.schema = dict(schema) if isinstance(schema, Mapping) else schema
        return self

    def subscription_for(self, phase: str) -> Subscription | None:
        """The subscription for ``phase``, if any."""
        return next((s for s in self.subscriptions if s.phase == phase), None)

    def validate(self) -> None:
        """Checks the manifest against the rules of PROTOCOL.md §8.2 (the host
        applies the same ones); raises :class:`ManifestError` with every problem."""
        errors = [
            *_check_name_and_version(self.name, self.version),
            *_check_subscriptions(self.subscriptions),
            *_check_permissions(self.permissions),
            *_check_dependencies(self.name, self.dependencies),
            *_check_schema(self.schema),
            *_check_event_subscriptions(self.event_subscriptions),
        ]
        if errors:
            raise ManifestError(errors)

    def to_proto(self, protocol_version: int) -> plugin_pb2.Manifest:
        """The manifest's wire form, speaking ``protocol_version``."""
        m = plugin_pb2.Manifest(
            name=self.name,
            version=self.version,
            protocol_version=protocol_version,
            description=self.description,
            features=self.features,
            subscriptions=[
                plugin_pb2.Subscription(phase=s.phase, priority=s.priority, idempotent=s.idempotent)
                for s in self.subscriptions
            ],
            permissions=[plugin_pb2.Permission(name=p.name, reason=p.reason) for p in self.permissions],
            dependencies=[
                plugin_pb2.Dependency(name=d.name, version_req=d.version_req, optional=d.optional)
                for d in self.dependencies
            ],
        )
        if self.schema is not None:
            m.config_schema.CopyFrom(dict_to_struct(self.schema))
        m.event_subscriptions.extend(plugin_pb2.EventSubscription(pattern=p) for p in self.event_subscriptions)
        return m


def _invalid_plugin_name(name: object) -> str:
    return (
        f"{name!r} is not a valid plugin name (1 to {MAX_NAME_LEN} characters "
        "of a-z, 0-9, '_', '-', starting with a letter or digit)"
    )


def _check_name_and_version(name: object, version: object) -> list[FieldError]:
    errors = []
    if not isinstance(name, str) or not is_valid_plugin_name(name):
        errors.append(FieldError("name", _invalid_plugin_name(name)))
    if not isinstance(version, str) or not is_semver(version):
        errors.append(
            FieldError("version", f"{version!r} is not a semver version (MAJOR.MINOR.PATCH, e.g. 1.4.0)")
        )
    return errors


def _check_subscriptions(subscriptions: list[Subscription]) -> list[FieldError]:
    """Valid phase names, each subscribed to at most once, priorities that fit the wire's int32."""
    errors = []
    first_index: dict[str, int] = {}
    for i, s in enumerate(subscriptions):
        field = f"subscriptions[{i}].phase"
        if not is_valid_phase_name(s.phase):
            errors.append(
                FieldError(
                    field,
                    f"{s.phase!r} is not a valid phase name (1 to {MAX_NAME_LEN} characters of a-z, 0-9, '_', '.', '-')",
                )
            )
        elif s.phase in first_index:
            errors.append(
                FieldError(field, f"{s.phase!r} is subscribed to twice (also subscriptions[{first_index[s.phase]}])")
            )
        else:
            first_index[s.phase] = i
        if not -(2**31) <= s.priority < 2**31:
            errors.append(FieldError(f"subscriptions[{i}].priority", f"{s.priority} does not fit in 32 bits"))
    return errors


def _check_permissions(permissions: list[Permission]) -> list[FieldError]:
    """No blank names, and none with control characters (shown to operators)."""
    return [
        FieldError(
            f"permissions[{i}].name",
            f"{p.name!r} is not a permission name (it must not be blank or hold control characters)",
        )
        for i, p in enumerate(permissions)
        if not p.name.strip() or any(unicodedata.category(c) == "Cc" for c in p.name)
    ]


def _check_dependencies(own_name: str, dependencies: list[Dependency]) -> list[FieldError]:
    """Valid names other than the plugin's own, each listed once, and requirements that parse."""
    errors = []
    first_index: dict[str, int] = {}
    for i, d in enumerate(dependencies):
        field = f"dependencies[{i}].name"
        if not is_valid_plugin_name(d.name):
            errors.append(FieldError(field, _invalid_plugin_name(d.name)))
        elif d.name == own_name:
            errors.append(FieldError(field, f"{d.name!r} is the plugin itself"))
        elif d.name in first_index:
            errors.append(FieldError(field, f"{d.name!r} is listed twice (also dependencies[{first_index[d.name]}])"))
        else:
            first_index[d.name] = i
        if d.version_req.strip() and not is_version_req(d.version_req):
            errors.append(
                FieldError(
                    f"dependencies[{i}].version_req",
                    f"{d.version_req!r} is not a semver requirement (e.g. '>=1.2, <2' or '^1.4')",
                )
            )
    return errors


def _check_schema(schema: object) -> list[FieldError]:
    """A config schema, when given, is a JSON object a ``Struct`` can carry."""
    if schema is None:
        return []
    if not isinstance(schema, dict):
        return [FieldError("config_schema", f"a JSON Schema here must be an object, got {schema!r}")]
    try:
        dict_to_struct(schema)
    except TypeError as e:
        return [FieldError("config_schema", str(e))]
    return []


_EVENT_PATTERN = re.compile(r"[a-z0-9_.*-]{1,128}")


def _check_event_subscriptions(patterns: list[str]) -> list[FieldError]:
    errors = []
    for i, pattern in enumerate(patterns):
        field_name = f"event_subscriptions[{i}].pattern"
        if not isinstance(pattern, str) or not _EVENT_PATTERN.fullmatch(pattern):
            errors.append(FieldError(field_name, f"{pattern!r} is not 1 to 128 characters of [a-z0-9_.*-]"))
        elif pattern in patterns[:i]:
            errors.append(FieldError(field_name, f"{pattern!r} is listed twice (also event_subscriptions[{patterns.index(pattern)}])"))
    return errors

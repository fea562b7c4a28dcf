"""Write an `Outboard <https://github.com/outboard-rs/outboard>`_ plugin in
Python: subclass :class:`Plugin`, call :func:`run` from ``main``, and the SDK
does the rest of the protocol (docs/PROTOCOL.md): the environment check, the
Unix socket (mode 0600), the handshake line, the token check, gRPC with
health and reflection, deadlines, SIGTERM and a graceful stop.

Layout:

- :mod:`.plugin`: :class:`Plugin`, the one class an author subclasses.
- :mod:`.manifest`, :mod:`.config`, :mod:`.invocation`, :mod:`.reply`: the
  types it speaks: :class:`Manifest` (what ``Describe`` answers),
  :class:`Config` (what ``Configure`` brings), :class:`Invocation` (one
  phase), :class:`Reply` (go on with a patch, or abort).
- :mod:`.errors`: :class:`PluginError` and its kinds (mapped to gRPC status
  codes), :class:`ServeError`, :class:`SettingsError`.
- :mod:`.health`: :class:`Health`, to report ``NOT_SERVING``.
- :mod:`.host`, :mod:`.kv`, :mod:`.secrets`, :mod:`.events`: host services
  (PROTOCOL.md §17): :class:`HostServices` and the clients it gives,
  ``invocation.kv()``, ``config.secrets()``, ``event.events()``; the
  :class:`Event` a plugin subscribes to with :meth:`Manifest.subscribe_event`
  and handles in :meth:`Plugin.on_event`.
- :mod:`.settings`: the ``OUTBOARD_*`` environment.
- :mod:`.server`, :mod:`.service`, :mod:`.auth`, :mod:`.reflection`,
  :mod:`.workers`: :func:`run`, :func:`serve`, :func:`serve_with`, the
  ``PluginService`` implementation, the token check, server reflection
  (loaded on first use) and the worker threads for plain ``def`` methods.
- :mod:`.patch`, :mod:`.jsonvalue`: JSON Pointers and patches;
  ``google.protobuf.Struct`` <-> ``dict``.
- :mod:`.log`: JSON log lines on stderr.
- :mod:`.trace`: continuing the host's trace (the ``otel`` extra): the
  ``Invoke`` span, span export, ids in the log records.
- :mod:`.testing`: :class:`~outboard_plugin.testing.Harness`, to unit-test a
  plugin without a host, and :class:`~outboard_plugin.testing.FakeHost`
  (:mod:`.fakehost`), host services in memory.
- ``_proto``: the generated protobuf and gRPC modules (see generate.sh).

Example::

    from outboard_plugin import Invocation, Manifest, Plugin, Reply, run

    class Hello(Plugin):
        def manifest(self) -> Manifest:
            return Manifest("hello", "0.1.0").describe("Greets the job").subscribe("pre_container", 50)

        def invoke(self, invocation: Invocation) -> Reply:
            user = invocation.env("USER") or "world"
            return Reply.ok().set("/env/GREETING", f"hello, {user}")

    if __name__ == "__main__":
        raise SystemExit(run(Hello()))
"""

from .config import Config
from .errors import (
    Failed,
    FailedPrecondition,
    InvalidConfig,
    InvalidContext,
    NotStartedByHost,
    PluginError,
    ServeError,
    SettingsError,
    Unavailable,
    Unimplemented,
)
from .events import Event, Events
from .health import Health
from .host import HostEndpoint, HostError, HostServices, HostServicesNotOffered
from .invocation import Invocation
from .kv import ABSENT, CasResult, Entry, Kv, Page
from .manifest import Dependency, FieldError, Manifest, ManifestError, Permission, Subscription
from .patch import PatchError, PatchOp, pointer
from .plugin import Plugin
from .reply import Outcome, Reply
from .secrets import Secret, Secrets
from .server import SIGNAL_GRACE, run, serve, serve_with
from .settings import PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS, Settings

__all__ = [
    "ABSENT",
    "PROTOCOL_VERSION",
    "SIGNAL_GRACE",
    "SUPPORTED_PROTOCOL_VERSIONS",
    "CasResult",
    "Config",
    "Dependency",
    "Entry",
    "Event",
    "Events",
    "Failed",
    "FailedPrecondition",
    "FieldError",
    "Health",
    "HostEndpoint",
    "HostError",
    "HostServices",
    "HostServicesNotOffered",
    "InvalidConfig",
    "InvalidContext",
    "Invocation",
    "Kv",
    "Manifest",
    "ManifestError",
    "NotStartedByHost",
    "Outcome",
    "Page",
    "PatchError",
    "PatchOp",
    "Permission",
    "Plugin",
    "PluginError",
    "Reply",
    "Secret",
    "Secrets",
    "ServeError",
    "Settings",
    "SettingsError",
    "Subscription",
    "Unavailable",
    "Unimplemented",
    "pointer",
    "run",
    "serve",
    "serve_with",
]

__version__ = "0.1.0"

"""``chat-notifier``: after the command exits, posts a chat message about the
job, Slack/Mattermost incoming-webhook style, to a webhook on this machine,
or appends it to a file.

The message is the JSON object ``{"text": "..."}``, for example::

    {"text": ":white_check_mark: job 6f1c2d3e succeeded: `make test` exited with 0"}
    {"text": ":x: job 6f1c2d3e failed: `make test` exited with 2"}

It subscribes to ``post_container`` (parallel in the job profile), so it
writes only under its own key, ``/metadata/chat_notifier``:
``{"delivered_to": "<url or file>", "text": "..."}``. When the context has no
``exit_code`` (the command did not run: a dry run) nothing is sent.

- **File mode** appends the message as one JSON line. A new file is
  created 0600; a symbolic link at the path, or anything but a regular
  file, is refused rather than followed.
- **URL mode** POSTs it with ``Content-Type: application/json``. Only
  ``http://`` URLs to this machine are accepted: the host must be in
  127.0.0.0/8, ``[::1]`` or ``localhost`` (which is connected to as
  127.0.0.1, never looked up). No proxy is used and redirects are not
  followed, so the message cannot leave the machine. The request is bounded
  by the invocation's deadline; a status other than 2xx, a connection error
  or no answer in time is ``UNAVAILABLE``, naming the URL.

Config: exactly one of ``url`` and ``file``; ``notify`` is ``"always"``
(default) or ``"failure"`` (only jobs that failed)::

    [plugin.config]
    url = "http://127.0.0.1:8065/hooks/outboard"   # or: file = "/var/log/outboard/chat.jsonl"
    notify = "failure"

Only the standard library is used besides the SDK.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import shlex
import socket
import stat
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from outboard_plugin import Config, Invocation, Manifest, Plugin, PluginError, Reply, pointer, run

NAME = "chat-notifier"
VERSION = "0.1.0"
PHASE = "post_container"
METADATA_KEY = "chat_notifier"
#: How long a request may take when the invocation has no deadline (seconds).
DEFAULT_BUDGET = 2.0
#: What a request leaves of the time to the deadline, so that it fails with
#: its own message rather than being cut off by the SDK.
DEADLINE_MARGIN = 0.1
NOTIFY = ("always", "failure")

CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "url": {
            "type": "string",
            "description": "An http:// webhook on this machine (127.0.0.0/8, [::1] or localhost)",
        },
        "file": {"type": "string", "minLength": 1, "description": "A file to append messages to, one JSON line each"},
        "notify": {"enum": list(NOTIFY), "default": "always", "description": "Which jobs to tell about"},
    },
    # "Exactly one of url and file" is left to `configure`, whose message
    # says so in words; a schema validator's `oneOf` failure does not.
    "description": "Exactly one of url and file",
    "additionalProperties": False,
}

LOOPBACK_RULE = "the host must be this machine (127.0.0.0/8, [::1] or localhost)"


@dataclass(frozen=True)
class Webhook:
    """A checked ``http://`` URL to this machine."""

    #: The URL as configured.
    raw: str
    #: The URL actually requested (``localhost`` replaced by 127.0.0.1).
    target: str
    #: The ``Host`` header: host and port as written.
    host_header: str


def parse_url(raw: str) -> Webhook:
    """Checks that ``raw`` is an ``http://`` URL to this machine; raises
    ``ValueError`` saying why not."""
    parts = urllib.parse.urlsplit(raw)
    if parts.scheme.lower() != "http":
        raise ValueError(f"only http:// URLs are supported, and {LOOPBACK_RULE}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("a webhook URL must not carry user information")
    if parts.fragment:
        raise ValueError("a webhook URL must not have a fragment")
    if any(c in raw for c in " \r\n\t"):
        raise ValueError("a webhook URL must not contain spaces or line breaks")
    host = parts.hostname
    if not host:
        raise ValueError("the URL has no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"the port in {parts.netloc!r} is not a port number") from None
    if port == 0:
        raise ValueError("port 0 is not a port to connect to")
    if host == "localhost":
        connect_host = "127.0.0.1"
    else:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{LOOPBACK_RULE}, not {host!r}") from None
        if not address.is_loopback or (address.version == 6 and address != ipaddress.IPv6Address("::1")):
            raise ValueError(f"{LOOPBACK_RULE}, not {host}")
        connect_host = f"[{host}]" if address.version == 6 else host
    netloc = connect_host if port is None else f"{connect_host}:{port}"
    target = urllib.parse.urlunsplit(("http", netloc, parts.path or "/", parts.query, ""))
    return Webhook(raw=raw, target=target, host_header=parts.netloc)


@dataclass(frozen=True)
class Settings:
    """The checked config: one destination and when to notify."""

    #: POST here, if set.
    webhook: Webhook | None
    #: Append here, if set.
    file: str | None
    #: ``"always"`` or ``"failure"``.
    notify: str

    @property
    def destination(self) -> str:
        """Where messages go, for the report."""
        return self.webhook.raw if self.webhook else str(self.file)

    @staticmethod
    def parse(values: dict[str, Any], plugin: str = NAME) -> Settings:
        """Checks a config the way the schema does, and more (loopback only,
        the file's directory exists), with messages for the operator;
        ``plugin`` names the plugin whose config it is."""
        for key in sorted(values):
            if key not in CONFIG_SCHEMA["properties"]:
                raise PluginError.invalid_config(f"unknown key {key!r}; {plugin} accepts: url, file, notify")
        url, file = values.get("url"), values.get("file")
        if (url is None) == (file is None):
            raise PluginError.invalid_config(
                "give one of `url` and `file`, not both" if url is not None else "a destination is required: set `url` or `file`"
            )
        notify = values.get("notify", "always")
        if notify not in NOTIFY:
            raise PluginError.invalid_config(f"notify: {notify!r} is not one of {', '.join(NOTIFY)}")
        if url is not None:
            if not isinstance(url, str):
                raise PluginError.invalid_config(f"url: expected a string, got {url!r}")
            try:
                return Settings(parse_url(url), None, notify)
            except ValueError as e:
                raise PluginError.invalid_config(f"url: {url!r} is not allowed: {e}") from None
        if not isinstance(file, str) or not file:
            raise PluginError.invalid_config(f"file: expected a non-empty path, got {file!r}")
        directory = os.path.dirname(os.path.abspath(file))
        if not os.path.isdir(directory):
            raise PluginError.invalid_config(f"file: the directory {directory} of {file!r} does not exist")
        return Settings(None, file, notify)


@dataclass(frozen=True)
class Job:
    """What the message says about the job."""

    job_id: str
    command: list[str]
    exit_code: int

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0

    def text(self) -> str:
        """The chat message's text."""
        icon, status = (":white_check_mark:", "succeeded") if self.succeeded else (":x:", "failed")
        return f"{icon} job {self.job_id} {status}: `{shlex.join(self.command)}` exited with {self.exit_code}"


def read_job(invocation: Invocation) -> Job | None:
    """The finished job from the context, or ``None`` if the command did not
    run; ``INVALID_ARGUMENT`` naming the key that is missing or wrong."""
    exit_code = invocation.context.get("exit_code")
    if exit_code is None:
        return None
    if isinstance(exit_code, bool) or not isinstance(exit_code, int):
        raise PluginError.invalid_context(f"/exit_code is {exit_code!r}, not an integer")
    job_id = invocation.context.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        raise PluginError.invalid_context(f"/job_id is {'missing' if job_id is None else repr(job_id)}: expected the job's id")
    command = invocation.context.get("command")
    if not isinstance(command, list) or not all(isinstance(a, str) for a in command):
        raise PluginError.invalid_context(f"/command is {command!r}, not an array of strings")
    return Job(job_id, command, exit_code)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect could lead off this machine: refuse to follow it."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        raise urllib.error.HTTPError(req.full_url, code, f"{msg} (redirects are not followed)", headers, fp)


# No ProxyHandler settings: proxies from the environment would carry the
# message off the machine.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


def post(webhook: Webhook, body: bytes, budget: float) -> None:
    """POSTs ``body`` to ``webhook`` within ``budget`` seconds; ``UNAVAILABLE``
    naming the URL if it does not answer 2xx in time."""
    if budget <= 0:
        raise PluginError.unavailable(f"POST {webhook.raw}: no time left before the deadline")
    request = urllib.request.Request(
        webhook.target,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Host": webhook.host_header, "User-Agent": f"{NAME}/{VERSION}"},
    )
    try:
        with _OPENER.open(request, timeout=budget) as response:
            response.read(64 * 1024)
    except urllib.error.HTTPError as e:
        raise PluginError.unavailable(f"POST {webhook.raw} answered {e.code} {e.reason}") from None
    except (TimeoutError, socket.timeout):
        raise PluginError.unavailable(f"POST {webhook.raw}: no answer within {round(budget * 1000)} ms") from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, (TimeoutError, socket.timeout)):
            raise PluginError.unavailable(f"POST {webhook.raw}: no answer within {round(budget * 1000)} ms") from None
        raise PluginError.unavailable(f"POST {webhook.raw}: cannot connect: {e.reason}") from None
    except OSError as e:
        raise PluginError.unavailable(f"POST {webhook.raw}: {e}") from None


#: The mode of a file :func:`append` creates: the owner's only.
NEW_FILE_MODE = 0o600

#: How :func:`append` opens: never through a symbolic link at the path
#: (``O_NOFOLLOW``), never waiting for a FIFO's reader (``O_NONBLOCK``).
_APPEND_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def append(path: str, body: bytes) -> None:
    """Appends ``body`` and a newline to ``path`` in one write, creating the
    file with mode :data:`NEW_FILE_MODE` if it is missing. Someone who can
    write to the directory could plant a symbolic link or a FIFO at the path
    before the first message: a link is refused rather than followed, and so
    is anything but a regular file."""
    try:
        fd = os.open(path, _APPEND_FLAGS, NEW_FILE_MODE)
    except OSError as e:
        raise PluginError.failed(f"cannot append to {path}: {_refusal(path, e)}") from None
    try:
        kind = os.fstat(fd).st_mode
        if not stat.S_ISREG(kind):
            raise PluginError.failed(f"cannot append to {path}: it is {_kind_name(kind)}, not a regular file")
        data = body + b"\n"
        while data:
            data = data[os.write(fd, data) :]
    except OSError as e:
        raise PluginError.failed(f"cannot append to {path}: {e.strerror}") from None
    finally:
        os.close(fd)


def _refusal(path: str, error: OSError) -> str | None:
    """Why opening ``path`` failed: what is there when ``O_NOFOLLOW`` (a link:
    ``ELOOP``) or ``O_NONBLOCK`` (a FIFO without a reader: ``ENXIO``) refused
    it, else the OS's words."""
    if error.errno in (errno.ELOOP, errno.ENXIO):
        try:
            kind = os.lstat(path).st_mode
        except OSError:
            return error.strerror
        if stat.S_ISLNK(kind):
            return "it is a symbolic link, which is not followed (refusing to write where someone else may point it)"
        if not stat.S_ISREG(kind):
            return f"it is {_kind_name(kind)}, not a regular file"
    return error.strerror


def _kind_name(mode: int) -> str:
    """``a directory``, ``a FIFO``, ... for an error message."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "something"


def budget(time_left: float | None) -> float:
    """How long a request may take: the time to the deadline less a margin
    (half of it when the deadline is near), or :data:`DEFAULT_BUDGET`."""
    if time_left is None:
        return DEFAULT_BUDGET
    return max(0.0, time_left - min(DEADLINE_MARGIN, time_left / 2))


def deliver(settings: Settings, text: str, time_left: float | None) -> None:
    """Sends the chat message ``{"text": text}`` where ``settings`` say,
    within ``time_left`` seconds when there is a deadline."""
    body = json.dumps({"text": text}, ensure_ascii=False, separators=(",", ":")).encode()
    if settings.webhook is not None:
        post(settings.webhook, body, budget(time_left))
    else:
        assert settings.file is not None
        append(settings.file, body)


class ChatNotifier(Plugin):
    """The plugin. ``invoke`` is a plain ``def``: the SDK runs it in a worker
    thread, so the blocking request does not stall the server."""

    def __init__(self) -> None:
        self.settings: Settings | None = None

    def manifest(self) -> Manifest:
        return (
            Manifest(NAME, VERSION)
            .describe("Posts a chat message about each finished job to a local webhook or a file")
            .subscribe(PHASE, 20)
            .config_schema(CONFIG_SCHEMA)
        )

    def configure(self, config: Config) -> None:
        self.settings = Settings.parse(config.values)

    def invoke(self, invocation: Invocation) -> Reply:
        if invocation.phase != PHASE:
            return Reply.ok()
        settings = self.settings
        if settings is None:
            raise PluginError.failed(f"{NAME} was not configured")
        job = read_job(invocation)
        if job is None:
            return Reply.ok().with_message("the command did not run: nothing sent")
        if settings.notify == "failure" and job.succeeded:
            return Reply.ok().with_message("the job succeeded: nothing sent (notify = failure)")
        text = job.text()
        deliver(settings, text, invocation.time_left())
        return (
            Reply.ok()
            .set(pointer("metadata", METADATA_KEY), {"delivered_to": settings.destination, "text": text})
            .with_message(f"sent to {settings.destination}")
        )


def main() -> int:
    """The ``chat-notifier`` command."""
    return run(ChatNotifier())


if __name__ == "__main__":
    raise SystemExit(main())

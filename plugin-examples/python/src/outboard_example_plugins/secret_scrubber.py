"""``secret-scrubber``: before the container starts, redacts the values of
the job's environment variables whose *names* look secret, so that they reach
neither the command, nor the plugins after it, nor the host's report.

The job's environment starts as the host's whole environment (JOBS.md), so
a runner's own credentials would otherwise be handed to every job.

It subscribes to ``pre_container`` at priority 20: after ``policy-gate`` (0)
and ``env-injector`` (10), before ``resource-limiter`` (50). In the job
profile that phase is sequential, so every later subscriber sees the
scrubbed environment. Retrying is harmless: scrubbing twice is scrubbing once.

Names are matched case-insensitively against each pattern: a glob (``*``,
``?``, ``[...]``) by default, or a regular expression with the prefix
``re:`` (matched against the whole name). A name matching one of ``keep`` is
never scrubbed.

Config (all optional)::

    [plugin.config]
    patterns = ["*SECRET*", "*TOKEN*", "re:^AWS_.*"]   # replaces the defaults
    keep = ["GITHUB_TOKEN_URL"]                       # never scrubbed
    replacement = "[redacted]"                        # the value put instead
    remove = false                                    # true: remove the variable instead

Patches:

- ``/env/<NAME>``: set to ``replacement`` (or removed with ``remove = true``)
  for every matching variable whose value is not already the replacement;
- ``/metadata/secret_scrubber``: ``{"scrubbed": [names, sorted]}`` (names
  only, never values).

It asks for the permission ``env:write`` and refuses to start
(``FAILED_PRECONDITION``) without it: grant it with ``grant = ["env:write"]``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from outboard_plugin import Config, Invocation, Manifest, Plugin, PluginError, Reply, pointer, run

NAME = "secret-scrubber"
VERSION = "0.1.0"
PHASE = "pre_container"
PRIORITY = 20
PERMISSION = "env:write"
METADATA_KEY = "secret_scrubber"

#: The patterns used when the config gives none.
DEFAULT_PATTERNS: tuple[str, ...] = (
    "*SECRET*",
    "*TOKEN*",
    "*PASSWORD*",
    "*PASSWD*",
    "*CREDENTIAL*",
    "*PRIVATE_KEY*",
    "*_KEY",
)
DEFAULT_REPLACEMENT = "[redacted]"
#: The prefix that makes a pattern a regular expression.
REGEX_PREFIX = "re:"

_PATTERN_LIST = {"type": "array", "items": {"type": "string", "minLength": 1}}

CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "patterns": {
            **_PATTERN_LIST,
            "description": "Name patterns to scrub: globs, or regular expressions prefixed 're:'; "
            "replaces the defaults",
            "default": list(DEFAULT_PATTERNS),
        },
        "keep": {**_PATTERN_LIST, "description": "Name patterns never scrubbed", "default": []},
        "replacement": {
            "type": "string",
            "description": "The value put in place of a secret",
            "default": DEFAULT_REPLACEMENT,
        },
        "remove": {
            "type": "boolean",
            "description": "Remove matching variables instead of replacing their values",
            "default": False,
        },
    },
    "additionalProperties": False,
}


def compile_patterns(key: str, patterns: Any) -> list[re.Pattern[str]]:
    """``patterns`` (the config's ``key``) compiled to case-insensitive
    regular expressions; raises ``INVALID_ARGUMENT`` naming the bad entry."""
    if not isinstance(patterns, list):
        raise PluginError.invalid_config(f"{key}: expected an array of name patterns, got {patterns!r}")
    compiled = []
    for i, pattern in enumerate(patterns):
        if not isinstance(pattern, str) or not pattern:
            raise PluginError.invalid_config(f"{key}[{i}]: expected a non-empty string, got {pattern!r}")
        if pattern.startswith(REGEX_PREFIX):
            source = pattern[len(REGEX_PREFIX) :]
            try:
                compiled.append(re.compile(source, re.IGNORECASE))
            except re.error as e:
                raise PluginError.invalid_config(f"{key}[{i}]: {pattern!r} is not a regular expression: {e}") from None
        else:
            compiled.append(re.compile(fnmatch.translate(pattern), re.IGNORECASE))
    return compiled


@dataclass(frozen=True)
class Settings:
    """The checked config."""

    #: Names to scrub.
    patterns: tuple[re.Pattern[str], ...]
    #: Names never scrubbed.
    keep: tuple[re.Pattern[str], ...]
    #: The value put instead.
    replacement: str
    #: Remove instead of replacing.
    remove: bool

    @staticmethod
    def parse(values: dict[str, Any]) -> Settings:
        """Checks a config the way the schema does, with messages for the operator."""
        for key in sorted(values):
            if key not in CONFIG_SCHEMA["properties"]:
                raise PluginError.invalid_config(
                    f"unknown key {key!r}; {NAME} accepts: {', '.join(CONFIG_SCHEMA['properties'])}"
                )
        replacement = values.get("replacement", DEFAULT_REPLACEMENT)
        if not isinstance(replacement, str):
            raise PluginError.invalid_config(f"replacement: expected a string, got {replacement!r}")
        remove = values.get("remove", False)
        if not isinstance(remove, bool):
            raise PluginError.invalid_config(f"remove: expected true or false, got {remove!r}")
        patterns = compile_patterns("patterns", values.get("patterns", list(DEFAULT_PATTERNS)))
        if not patterns:
            raise PluginError.invalid_config("patterns: is empty, so nothing would ever be scrubbed")
        return Settings(tuple(patterns), tuple(compile_patterns("keep", values.get("keep", []))), replacement, remove)

    def matches(self, name: str) -> bool:
        """``True`` if the variable ``name`` is to be scrubbed."""
        return any(p.fullmatch(name) for p in self.patterns) and not any(k.fullmatch(name) for k in self.keep)


def scrub(settings: Settings, env: dict[str, Any]) -> Reply:
    """The reply scrubbing ``env``: a patch for each secret-looking variable
    not scrubbed yet, and the list of names under ``/metadata/secret_scrubber``."""
    names = sorted(name for name, value in env.items() if value is not None and settings.matches(name))
    reply = Reply.ok()
    for name in names:
        if settings.remove:
            reply = reply.remove(pointer("env", name))
        elif env[name] != settings.replacement:
            reply = reply.set(pointer("env", name), settings.replacement)
    reply = reply.set(pointer("metadata", METADATA_KEY), {"scrubbed": names})
    return reply.with_message(describe(names))


def describe(names: Sequence[str]) -> str:
    """The message for the host's report."""
    if not names:
        return "nothing to scrub"
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"scrubbed {len(names)} variable{'s' if len(names) != 1 else ''}: {shown}"


class SecretScrubber(Plugin):
    """The plugin: its settings, replaced whole at each ``configure``."""

    def __init__(self) -> None:
        self.settings = Settings.parse({})

    def manifest(self) -> Manifest:
        return (
            Manifest(NAME, VERSION)
            .describe("Redacts the job's environment variables whose names look secret")
            .subscribe_idempotent(PHASE, PRIORITY)
            .permission(PERMISSION, "to replace secret values in the job's environment")
            .config_schema(CONFIG_SCHEMA)
        )

    def configure(self, config: Config) -> None:
        settings = Settings.parse(config.values)
        config.require(PERMISSION)
        self.settings = settings

    def invoke(self, invocation: Invocation) -> Reply:
        if invocation.phase != PHASE:
            return Reply.ok()
        env = invocation.context.get("env")
        if env is None:
            raise PluginError.invalid_context("/env is missing: the job context has no environment to scrub")
        if not isinstance(env, dict):
            raise PluginError.invalid_context(f"/env is {type(env).__name__}, not an object of variables")
        return scrub(self.settings, env)


def main() -> int:
    """The ``secret-scrubber`` command."""
    return run(SecretScrubber())


if __name__ == "__main__":
    raise SystemExit(main())

"""Logs as the host reads them (PROTOCOL.md §11): one JSON object per line on
stderr, with ``level``, ``message`` and the record's extra fields at the top
level. The host tags each line with the plugin's instance name.

``run()`` calls :func:`init`; the level comes from the ``LOG_LEVEL``
variable (``debug``, ``info``, ``warning``, ``error``; default ``info``),
which the operator sets with the plugin's ``env`` in the host's config.

While spans are exported (:mod:`.trace`), a record written inside a span
(an ``Invoke``, or the plugin's own spans within it) also carries
``trace_id`` and ``span_id``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

#: The level used when ``LOG_LEVEL`` is unset or not a level name.
DEFAULT_LEVEL = "info"

#: Set by :mod:`.trace` while spans are exported: the current trace and span
#: ids (hex), or ``None`` outside a span.
current_ids: Callable[[], tuple[str, str] | None] | None = None

# The attributes every LogRecord has; anything else came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: ``level`` (lower case),
    ``message``, ``logger``, the fields given with ``extra=``,
    ``exception`` (the whole traceback, in one field) if there is one, and
    ``trace_id`` and ``span_id`` inside a span while spans are exported."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "level": record.levelname.lower(),
            "message": record.getMessage(),
            "logger": record.name,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        ids = current_ids() if current_ids is not None else None
        if ids is not None:
            # The span's ids win over fields of the same name.
            out["trace_id"], out["span_id"] = ids
        return json.dumps(out, default=str, ensure_ascii=False)


def init(level: str | None = None) -> None:
    """Sends the root logger's records to stderr as JSON lines, unless the
    root logger already has a handler (the plugin set up its own)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    name = (level or os.environ.get("LOG_LEVEL") or DEFAULT_LEVEL).upper()
    root.setLevel(name if name in logging.getLevelNamesMapping() else DEFAULT_LEVEL.upper())

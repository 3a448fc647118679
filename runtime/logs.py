"""Log lines as JSON objects, for the server and its solve workers alike (``--log-format
json``): :class:`JsonFormatter`, and :data:`LOG_FORMAT_ENV_VAR`, through which the server tells
the worker processes (forked by a forkserver that inherits its environment) to log the same
way."""

from __future__ import annotations

import contextvars
import json
import logging
import time
from typing import Any, Final

__all__ = ["LOG_FORMAT_ENV_VAR", "REQUEST_ID", "JsonFormatter"]

LOG_FORMAT_ENV_VAR: Final = "ROUTEOPT_LOG_FORMAT"
"""``json``: the worker processes log JSON lines too (set by the server before they start)."""

REQUEST_ID: Final[contextvars.ContextVar[str]] = contextvars.ContextVar(
    "routeopt_request_id", default=""
)
"""The id of the call being handled in this thread ("" outside calls)."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC), ``level``, ``logger``, ``message``, ``pid``,
    ``thread``, ``request_id`` (in a call) and ``exc_info`` (a traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
            "thread": record.threadName,
        }
        request_id = getattr(record, "request_id", "") or REQUEST_ID.get()
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)

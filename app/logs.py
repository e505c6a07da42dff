"""Structured logs: one JSON object per line on stderr, for the web and gunicorn alike.

A record whose message is a dict (``log.info({"requestId": ..., ...})``) has its fields
merged into the line; any other message goes under ``message``. gunicorn's own loggers use
the same formatter through ``deploy/gunicorn.conf.py``'s ``logconfig_dict``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import msgspec

_encode = msgspec.json.Encoder().encode


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if isinstance(record.msg, dict):
            line.update(record.msg)
        else:
            line["message"] = record.getMessage()
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _encode(line).decode()


def configure(level: str = "info") -> None:
    """Root logging to stderr as JSON lines (what ``app.wsgi`` does in each worker)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


# gunicorn's logging, as a dictConfig: its error log (start-up, workers, signals) as JSON.
GUNICORN_LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "app.logs.JsonFormatter"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"handlers": ["stderr"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stderr"], "propagate": False, "level": "INFO"},
        # Off: the app writes the access line itself, with the request id (gunicorn would
        # otherwise log a second one per request, since a logconfig_dict is set).
        "gunicorn.access": {"handlers": [], "propagate": False, "level": "CRITICAL"},
    },
}

"""One JSON object per line on stderr: the web, gunicorn and the projector write the same
shape (time, level, logger, then the fields).

A record whose message is a dict (``log.info({"requestId": ..., ...})``) has its fields
merged into the line; any other message goes under ``message``.
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
    """Root logging to stderr as JSON lines.

    The lines carry no source file, thread or process, so the records do not collect them:
    the settings the logging documentation gives for speed ("Optimization"), which matter
    with one access line per request.
    """
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # no findCaller() walk of the stack per record
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())

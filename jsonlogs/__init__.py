"""One JSON object per line on stderr: the web, gunicorn and the projector write the same
shape (time, level, logger, then the fields).

A record whose message is a dict (``log.info({"requestId": ..., ...})``) has its fields
merged into the line; any other message goes under ``message``.
"""

from __future__ import annotations

import logging
import sys
import time
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


class Lines:
    """One INFO line per call for logger ``name``, the access line's path: the line
    ``JsonFormatter`` would write, written by the same handler's stream under the same
    handler's lock, without building a ``LogRecord`` and walking the handler chain. Those
    cost more than the line (14 % of a sync worker's conditional GET in the app's share, in a
    py-spy profile; bench/README.md).

    It takes the short path only where logging would do exactly that: the logger enabled for
    INFO, no handlers or filters of its own and propagating to the root, whose one handler is
    a ``StreamHandler`` with a ``JsonFormatter``, no filters and a level at most INFO (what
    ``configure`` and gunicorn's ``logconfig_dict`` set up). Any other configuration gets a
    plain ``logger.info``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._logger = logging.getLogger(name)
        self._root = logging.getLogger()

    def info(self, fields: dict[str, Any]) -> None:
        logger = self._logger
        if not logger.isEnabledFor(logging.INFO):
            return
        handler = self._short_path()
        if handler is None:
            logger.info(fields)
            return
        line = {"time": round(time.time(), 3), "level": "info", "logger": self.name}
        line.update(fields)
        text = _encode(line).decode() + handler.terminator
        handler.acquire()
        try:
            handler.stream.write(text)
            handler.flush()
        finally:
            handler.release()

    def _short_path(self) -> logging.StreamHandler[Any] | None:
        logger = self._logger
        if logger.handlers or logger.filters or not logger.propagate:
            return None
        handlers = self._root.handlers
        if len(handlers) != 1 or self._root.filters:
            return None
        (handler,) = handlers
        if (
            type(handler) is logging.StreamHandler
            and type(handler.formatter) is JsonFormatter
            and not handler.filters
            and handler.level <= logging.INFO
        ):
            return handler
        return None

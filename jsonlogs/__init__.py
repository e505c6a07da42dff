"""One JSON object per line on stderr: the web, gunicorn and the projector write the same
shape (time, level, logger, then the fields).

A record whose message is a dict (``log.info({"requestId": ..., ...})``) has its fields
merged into the line; any other message goes under ``message``.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import sys
import threading
import time
from typing import Any

import msgspec

_encode = msgspec.json.Encoder().encode
# How long a ``Lines`` line may wait in memory before its write, and how many may wait.
FLUSH_INTERVAL_S = 0.05
MAX_PENDING_LINES = 1024


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

    The lines are written in batches, off the request's path: ``_Pending`` holds them for at
    most ``FLUSH_INTERVAL_S`` (a thread writes each batch with one write), so a request pays
    for a list append, not for a write(2) and the reader's wake-up (6.5 µs of a 12.5 µs 304
    in bench/README.md's profile). What a process holds is written at its exit and at
    ``flush()``; a kill -9 loses at most the last interval's lines.
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
        _pending.put(handler, _encode(line).decode() + handler.terminator)

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


class _Pending:
    """Lines waiting for their write, in order, with the handler each goes to.

    ``put`` is a deque append (thread-safe without a lock); one daemon thread per process
    writes what has gathered every ``FLUSH_INTERVAL_S``, under each handler's own lock, as
    ``StreamHandler.emit`` does. A burst past ``MAX_PENDING_LINES`` is written by the caller
    that finds the queue full, so memory stays bounded. After a fork the child starts with
    nothing pending (its parent writes its own) and starts its own thread on its first line.
    """

    def __init__(self) -> None:
        self._lines: collections.deque[tuple[logging.StreamHandler[Any], str]] = collections.deque()
        self._writing = threading.Lock()
        self._thread: threading.Thread | None = None

    def put(self, handler: logging.StreamHandler[Any], text: str) -> None:
        lines = self._lines
        lines.append((handler, text))
        if self._thread is None:
            self._start()
        elif len(lines) >= MAX_PENDING_LINES:
            self.flush()

    def _start(self) -> None:
        with self._writing:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="jsonlogs-writer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL_S)
            if self._lines:
                self.flush()

    def flush(self) -> None:
        """Write every line put so far, in order (one write per run of one handler's)."""
        lines = self._lines
        with self._writing:
            while lines:
                handler = lines[0][0]
                batch: list[str] = []
                while lines and lines[0][0] is handler:
                    batch.append(lines.popleft()[1])
                handler.acquire()
                try:
                    handler.stream.write("".join(batch))
                    handler.flush()
                except Exception:  # a closed or broken stream: logging's own rule
                    handler.handleError(logging.makeLogRecord({"msg": "access lines"}))
                finally:
                    handler.release()

    def after_fork(self) -> None:
        self._lines = collections.deque()
        self._writing = threading.Lock()
        self._thread = None


_pending = _Pending()
os.register_at_fork(after_in_child=_pending.after_fork)
atexit.register(_pending.flush)


def flush() -> None:
    """Write the ``Lines`` lines this process still holds (it also happens at exit)."""
    _pending.flush()

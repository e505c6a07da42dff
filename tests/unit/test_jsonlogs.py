"""jsonlogs.Lines: the access line's short path writes what logging itself would write, in
batches off the request's path, and loses nothing at exit or across a fork."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import jsonlogs


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    jsonlogs.configure("info")
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    text = io.StringIO()
    handler.setStream(text)
    yield text
    root.handlers[:], root.level = saved


def lines(text: io.StringIO) -> list[dict[str, object]]:
    jsonlogs.flush()
    return [json.loads(line) for line in text.getvalue().splitlines()]


def test_the_short_path_writes_the_line_logging_writes(stream: io.StringIO) -> None:
    fields = {"requestId": "abc", "method": "GET", "path": "/v1/x \u00e9\n", "status": 304}
    jsonlogs.Lines("app.access").info(fields)
    logging.getLogger("app.access").info(dict(fields))
    short, logged = lines(stream)
    assert list(short) == list(logged)  # the same fields, in the same order
    assert abs(float(short.pop("time")) - float(logged.pop("time"))) < 5  # type: ignore[arg-type]
    assert short == logged == {"level": "info", "logger": "app.access", **fields}


def test_the_level_still_decides(stream: io.StringIO) -> None:
    logging.getLogger().setLevel(logging.WARNING)
    jsonlogs.Lines("app.access").info({"status": 200})
    assert lines(stream) == []


def test_another_configuration_gets_plain_logging(stream: io.StringIO) -> None:
    """A filter on the handler (or anything the short path does not reproduce): logging runs,
    so the filter sees, and here drops, the line."""
    seen: list[logging.LogRecord] = []

    def drop(record: logging.LogRecord) -> bool:
        seen.append(record)
        return False

    logging.getLogger().handlers[0].addFilter(drop)
    jsonlogs.Lines("app.access").info({"status": 200})
    assert lines(stream) == []
    assert [record.msg for record in seen] == [{"status": 200}]


def test_a_line_is_written_without_a_flush_within_moments(stream: io.StringIO) -> None:
    jsonlogs.Lines("app.access").info({"status": 204})
    deadline = time.monotonic() + 10
    while not stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert json.loads(stream.getvalue())["status"] == 204


CHILD = """
import os, sys
import jsonlogs
jsonlogs.configure("info")
log = jsonlogs.Lines("app.access")
log.info({"who": "parent, before the fork"})
pid = os.fork()
if pid == 0:
    log.info({"who": "child"})
    jsonlogs.flush()
    os._exit(0)
os.waitpid(pid, 0)
log.info({"who": "parent, at exit"})
"""


def test_nothing_is_lost_at_exit_or_written_twice_across_a_fork() -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    )
    who = sorted(str(json.loads(line)["who"]) for line in done.stderr.splitlines())
    assert who == ["child", "parent, at exit", "parent, before the fork"]

"""jsonlogs.Lines: the access line's short path writes what logging itself would write."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

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
    assert stream.getvalue() == ""


def test_another_configuration_gets_plain_logging(stream: io.StringIO) -> None:
    """A filter on the handler (or anything the short path does not reproduce): logging runs,
    so the filter sees, and here drops, the line."""
    seen: list[logging.LogRecord] = []

    def drop(record: logging.LogRecord) -> bool:
        seen.append(record)
        return False

    logging.getLogger().handlers[0].addFilter(drop)
    jsonlogs.Lines("app.access").info({"status": 200})
    assert stream.getvalue() == ""
    assert [record.msg for record in seen] == [{"status": 200}]

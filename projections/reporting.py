"""The read side's log: one JSON object per line, as the web writes its own."""

from __future__ import annotations

import logging

import msgspec

log = logging.getLogger("projections")
_encode = msgspec.json.Encoder().encode


def report(message: str, level: int = logging.INFO, **fields: object) -> None:
    """One structured log line."""
    name = logging.getLevelName(level).lower()
    log.log(level, _encode({"level": name, "message": message, **fields}).decode())

"""The read side's log lines: ``jsonlogs`` lines, as the web writes its own."""

from __future__ import annotations

import logging

log = logging.getLogger("projections")


def report(message: str, level: int = logging.INFO, **fields: object) -> None:
    """One structured log line: ``message`` and the fields."""
    log.log(level, {"message": message, **fields})

"""The web's logs: ``jsonlogs`` lines (the projector writes the same), and gunicorn's own
loggers on the same formatter through ``deploy/gunicorn.conf.py``'s ``logconfig_dict``."""

from __future__ import annotations

from typing import Any

from jsonlogs import configure

__all__ = ["GUNICORN_LOGGING", "configure"]

# gunicorn's logging, as a dictConfig: its error log (start-up, workers, signals) as JSON.
GUNICORN_LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "jsonlogs.JsonFormatter"}},
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

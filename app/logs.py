"""The web's logs: ``jsonlogs`` lines (the projector writes the same), and gunicorn's own
loggers on the same formatter through ``deploy/gunicorn.conf.py``'s ``logconfig_dict``."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from jsonlogs import configure

__all__ = ["GUNICORN_LOGGING", "GunicornLogger", "configure"]


class GunicornLogger(Logger):  # type: ignore[misc]  # gunicorn has no type hints
    """gunicorn's logger with its access log off for good: the app writes the access line
    itself, with the request id. gunicorn turns its access log on whenever a
    ``logconfig_dict`` is set, and then builds every request's atoms (a dict of some twenty
    formatted values) before the silenced ``gunicorn.access`` logger drops the line: 6 % of a
    sync worker's CPU per conditional GET in a py-spy profile (bench/README.md)."""

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return None

    def _compute_access_log_enabled(self) -> bool:  # gunicorn 25+ asks before building
        return False


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

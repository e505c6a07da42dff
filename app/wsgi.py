"""The server-facing app: ``gunicorn app.wsgi:app``. Settings come from the environment.

Imported in each gunicorn worker after the fork (``preload_app`` is off), so ``store`` and
its gRPC channel belong to the worker; ``deploy/gunicorn.conf.py`` checks the settings in
the master before any worker starts and calls ``store.check()`` as each worker boots.
"""

import os

from app import logs
from app.api import create_app
from app.settings import Settings
from telemetry import tracing

logs.configure(os.environ.get("LOG_LEVEL", "info"))
settings = Settings.from_env()
tracing.setup("restful-cqrs-web", instrument_falcon=True)  # in the worker, after the fork
store = settings.event_store()
app = create_app(settings, store=store)

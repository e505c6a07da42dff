"""The server-facing app: ``gunicorn app.wsgi:app``. Settings come from the environment."""

import logging
import os

from app.api import create_app
from app.settings import Settings

logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(), format="%(message)s")
app = create_app(Settings.from_env())

"""The server-facing app: ``gunicorn app.wsgi:app``. Settings come from the environment."""

from app.api import create_app
from app.settings import Settings

app = create_app(Settings.from_env())

"""The API under Falcon's TestClient, over a real esdblocal (no mocked store)."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from app.api import create_app
from app.settings import Settings

JSON = "application/json"
FIXED_NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)


def settings(esdb_uri: str, tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "esdb_uri": esdb_uri,
        "data_dir": tmp,
        "port": 0,
        "etag_key": bytes(range(64)),
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def api(esdb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> falcon.testing.TestClient:
    app = create_app(settings(esdb_uri, tmp_path_factory.mktemp("api")), clock=lambda: FIXED_NOW)
    return falcon.testing.TestClient(app)


def command(name: str) -> dict[str, str]:
    return {"Content-Type": f"{JSON}; domain-model={name}"}


def path_of(location: str) -> str:
    return "/" + location.split("/", 3)[3]

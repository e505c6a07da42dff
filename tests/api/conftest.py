"""The API under Falcon's TestClient, over a real esdblocal (no mocked store)."""

from __future__ import annotations

import datetime
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from app.api import create_app
from app.settings import Settings
from eventstore.feed import Feed
from projections.config import read_directory
from projections.projector import Projector
from projections.schema import open_current
from projections.views import VIEWS
from projections.writer import ReadStoreWriter

JSON = "application/json"
FIXED_NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)


def settings(esdb_uri: str, tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "esdb_uri": esdb_uri,
        "data_dir": tmp,
        "etag_key": bytes(range(64)),
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def api_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("api")


@pytest.fixture(scope="session")
def projector(esdb_uri: str, api_data: Path) -> Iterator[None]:
    """The real projector, following the session's esdblocal into the API's read store."""
    writer = ReadStoreWriter(open_current(read_directory(api_data)))
    feed = Feed(esdb_uri, [view.category for view in VIEWS])
    stop = threading.Event()
    thread = threading.Thread(target=Projector(feed, writer).run, args=(stop,), daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=10)
    writer.close()


@pytest.fixture(scope="session")
def api(esdb_uri: str, api_data: Path, projector: None) -> falcon.testing.TestClient:
    app = create_app(settings(esdb_uri, api_data), clock=lambda: FIXED_NOW)
    return falcon.testing.TestClient(app)


def command(name: str) -> dict[str, str]:
    return {"Content-Type": f"{JSON}; domain-model={name}"}


def path_of(location: str) -> str:
    return "/" + location.split("/", 3)[3]


def create(api: falcon.testing.TestClient, name: str = "Widget") -> falcon.testing.Result:
    """A new inventory item through the API (its 202, checked)."""
    result = api.simulate_post(
        "/v1/inventory-items",
        body=json.dumps({"name": name}),
        headers=command("CreateInventoryItemCommand"),
    )
    assert result.status_code == 202, result.json
    return result

"""The browser client's files (/app/): served from the package, public even with API keys on,
revalidated by ETag, held to 'self' by a Content-Security-Policy, and nothing else served."""

from __future__ import annotations

import re
from pathlib import Path

import falcon.testing
import pytest

from app.api import create_app
from app.auth import parse_keys
from tests.api.conftest import FIXED_NOW, settings

CLIENT = Path(__file__).resolve().parents[2] / "app" / "static" / "client"


@pytest.fixture(scope="module")
def guarded(esdb_uri: str, api_data: Path) -> falcon.testing.TestClient:
    keys = parse_keys(["alice:client-test-key-0123456789:read+write"])
    app = create_app(settings(esdb_uri, api_data, api_keys=keys), clock=lambda: FIXED_NOW)
    return falcon.testing.TestClient(app)


def test_app_redirects_to_the_index_and_needs_no_key(guarded: falcon.testing.TestClient) -> None:
    redirect = guarded.simulate_get("/app")
    assert redirect.status_code == 308
    assert redirect.headers["location"].endswith("/app/")
    index = guarded.simulate_get("/app/")
    assert index.status_code == 200
    assert index.headers["content-type"] == "text/html; charset=utf-8"
    assert index.text == (CLIENT / "index.html").read_text()
    assert "default-src 'none'" in index.headers["content-security-policy"]
    assert guarded.simulate_get("/v1/inventory-items").status_code == 401


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("app.js", "text/javascript"), ("api.js", "text/javascript"), ("app.css", "text/css")],
)
def test_assets_are_served_and_revalidated(
    guarded: falcon.testing.TestClient, name: str, content_type: str
) -> None:
    first = guarded.simulate_get(f"/app/{name}")
    assert first.status_code == 200
    assert first.headers["content-type"].startswith(content_type)
    assert first.content == (CLIENT / name).read_bytes()
    assert first.headers["cache-control"] == "no-cache"
    again = guarded.simulate_get(f"/app/{name}", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


@pytest.mark.parametrize("path", ["/app/nothing.js", "/app/..", "/app/%2e%2e%2fapi.py"])
def test_nothing_else_is_served(guarded: falcon.testing.TestClient, path: str) -> None:
    assert guarded.simulate_get(path).status_code == 404


def test_the_page_loads_nothing_from_elsewhere() -> None:
    for source in CLIENT.iterdir():
        text = source.read_text()
        assert not re.search(r"(src|href)=\"(https?:)?//", text), source.name
        assert not re.search(r"\bfrom \"https?:", text), source.name
        assert "@import" not in text, source.name

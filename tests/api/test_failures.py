"""When things break: 503 with Retry-After for an unreachable store, 500 that leaks nothing."""

from __future__ import annotations

from pathlib import Path

import falcon
import falcon.testing

from app.api import create_app
from tests.api.conftest import command, settings


def test_unreachable_event_store_is_503_with_retry_after(tmp_path: Path) -> None:
    app = create_app(settings("esdb://127.0.0.1:1?tls=false", tmp_path))
    result = falcon.testing.TestClient(app).simulate_post(
        "/v1/inventory-items", body=b'{"name": "W"}', headers=command("CreateInventoryItemCommand")
    )
    assert result.status_code == 503
    assert result.headers["retry-after"] == "1"
    assert (result.json["errorCode"], result.headers["content-type"]) == (
        1016,
        "application/problem+json",
    )


def test_unexpected_error_is_a_500_without_traceback(esdb_uri: str, tmp_path: Path) -> None:
    app = create_app(settings(esdb_uri, tmp_path))

    class Broken:
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            raise RuntimeError("secret internals /etc/passwd")

    app.add_route("/v1/broken", Broken())
    result = falcon.testing.TestClient(app).simulate_get("/v1/broken")
    assert result.status_code == 500
    assert result.json["errorCode"] == 1017
    assert "secret" not in result.text and "Traceback" not in result.text
    assert result.headers["x-request-id"]

"""When things break: 503 with Retry-After for an unreachable store, 500 that leaks nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import falcon
import falcon.testing
import pytest

from app.api import create_app
from tests.api.conftest import command, settings
from tests.conftest import SecureNode


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


def test_a_store_refusing_the_credentials_is_503_to_clients_and_an_error_in_the_log(
    secure_node: SecureNode, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The password was changed under a running web: clients get the 503 of any outage,
    the operator gets the reason (not the password)."""
    app = create_app(settings(secure_node.uri_as("admin", "rotated-away"), tmp_path))
    with caplog.at_level(logging.ERROR, logger="app"):
        result = falcon.testing.TestClient(app).simulate_post(
            "/v1/inventory-items",
            body=b'{"name": "W"}',
            headers=command("CreateInventoryItemCommand"),
        )
    assert (result.status_code, result.json["errorCode"]) == (503, 1016)
    assert "credentials" not in result.text
    (record,) = [r for r in caplog.records if r.name == "app" and r.levelno == logging.ERROR]
    assert "refused the credentials" in record.msg["message"]  # type: ignore[index]
    assert "rotated-away" not in str(record.msg)


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

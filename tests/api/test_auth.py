"""API keys with scopes over a real esdblocal: 401/403 matrix, public routes, the principal
in event metadata, and configuration that refuses to start open when told to."""

from __future__ import annotations

import json
from pathlib import Path

import falcon.testing
import pytest
from esdbclient import EventStoreDBClient

from app.api import create_app
from app.auth import keys_from_env, parse_keys
from app.settings import ConfigurationError
from tests.api.conftest import FIXED_NOW, command, settings

READER = "reader-key-0123456789"
WRITER = "writer-key-0123456789"
BOTH = "admin-key-0123456789ab"
KEYS = parse_keys([f"alice:{BOTH}:read+write", f"rita:{READER}:read", f"walt:{WRITER}:write"])


@pytest.fixture(scope="module")
def guarded(esdb_uri: str, api_data: Path) -> falcon.testing.TestClient:
    app = create_app(settings(esdb_uri, api_data, api_keys=KEYS), clock=lambda: FIXED_NOW)
    return falcon.testing.TestClient(app)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def create(api: falcon.testing.TestClient, key: str) -> falcon.testing.Result:
    return api.simulate_post(
        "/v1/inventory-items",
        body=json.dumps({"name": "Guarded"}),
        headers={**command("CreateInventoryItemCommand"), **bearer(key)},
    )


@pytest.mark.parametrize(
    ("authorization", "method", "status"),
    [
        (None, "GET", 401),
        (None, "POST", 401),
        ("Bearer not-a-key-at-all-0000", "GET", 401),
        (f"Basic {READER}", "GET", 401),
        ("Bearer", "GET", 401),
        (f"Bearer {READER}", "GET", 200),
        (f"Bearer {READER}", "POST", 403),
        (f"Bearer {WRITER}", "GET", 403),
        (f"Bearer {WRITER}", "POST", 202),
        (f"Bearer {BOTH}", "GET", 200),
        (f"Bearer {BOTH}", "POST", 202),
    ],
)
def test_keys_and_scopes(
    guarded: falcon.testing.TestClient, authorization: str | None, method: str, status: int
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    if method == "GET":
        result = guarded.simulate_get("/v1/inventory-items", headers=headers)
    else:
        result = guarded.simulate_post(
            "/v1/inventory-items",
            body=json.dumps({"name": "Scoped"}),
            headers={**command("CreateInventoryItemCommand"), **headers},
        )
    assert result.status_code == status, result.text
    if status == 401:
        assert result.headers["www-authenticate"].startswith('Bearer realm="api"')
        assert result.json["errorCode"] == 1020
    if status == 403:
        assert result.json["errorCode"] == 1021


@pytest.mark.parametrize("path", ["/healthz", "/v1/openapi.json", "/v1/errors", "/v1/errors/1020"])
def test_health_and_documentation_stay_public(
    guarded: falcon.testing.TestClient, path: str
) -> None:
    assert guarded.simulate_get(path).status_code == 200
    assert guarded.simulate_options("/v1/cars").status_code == 200


def test_the_principal_goes_into_every_events_metadata(
    guarded: falcon.testing.TestClient, client: EventStoreDBClient
) -> None:
    created = create(guarded, BOTH)
    assert created.status_code == 202
    stream = "inventoryItem-" + created.headers["location"].rsplit("/", 1)[1]
    (event,) = client.get_stream(stream)
    assert json.loads(event.metadata)["principal"] == "alice"


def test_an_open_api_puts_no_principal(
    api: falcon.testing.TestClient, client: EventStoreDBClient
) -> None:
    created = create(api, "ignored-when-open-000")
    stream = "inventoryItem-" + created.headers["location"].rsplit("/", 1)[1]
    (event,) = client.get_stream(stream)
    assert "principal" not in json.loads(event.metadata)


def test_require_auth_refuses_to_start_open(esdb_uri: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="REQUIRE_AUTH"):
        create_app(settings(esdb_uri, tmp_path, require_auth=True))


@pytest.mark.parametrize(
    "entry",
    ["no-colons", "bob:short:read", "bob:long-enough-key-000:admin", ":key-0123456789abc:read"],
)
def test_bad_key_entries_are_refused_with_a_reason(entry: str) -> None:
    with pytest.raises(ValueError, match="API key"):
        parse_keys([entry])


def test_keys_come_from_the_environment_and_a_file(tmp_path: Path) -> None:
    file = tmp_path / "keys"
    file.write_text(f"# team keys\nrita:{READER}:read\n\n")
    keys = keys_from_env({"API_KEYS": f"alice:{BOTH}:read+write", "API_KEYS_FILE": str(file)})
    assert [(k.principal, sorted(k.scopes)) for k in keys] == [
        ("alice", ["read", "write"]),
        ("rita", ["read"]),
    ]
    assert all(READER not in repr(k) for k in keys)  # only digests are kept

"""The API describes itself: OPTIONS, ResourceDescription and OpenAPI, checked against the
app's own routing table and the msgspec types that decode the bodies (no hand lists)."""

from __future__ import annotations

import falcon.testing
import msgspec
import pytest
from openapi_spec_validator import validate

from app.api import create_app
from app.description import RouteTable, operations
from app.problems import KINDS
from app.resources import InventoryItems
from domain import cars, inventory
from tests.api.conftest import FIXED_NOW, settings

DESCRIPTION = {"Accept": "application/json; domain-model=ResourceDescription"}


@pytest.fixture(scope="module")
def described(
    esdb_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[falcon.testing.TestClient, RouteTable]:
    routes = RouteTable()
    app = create_app(
        settings(esdb_uri, tmp_path_factory.mktemp("described")), lambda: FIXED_NOW, routes
    )
    return falcon.testing.TestClient(app), routes


def example(path: str) -> str:
    return path.replace("{item_id}", "00000000-0000-0000-0000-000000000001").replace(
        "{number}", "1000"
    )


def test_every_route_answers_options_both_ways(
    described: tuple[falcon.testing.TestClient, RouteTable],
) -> None:
    api, routes = described
    assert len(routes.routes) >= 11
    for route in routes.routes:
        plain = api.simulate_options(example(route.path))
        allow = plain.headers["allow"].split(", ")
        assert plain.json == allow, route.path
        full = api.simulate_options(example(route.path), headers=DESCRIPTION)
        assert full.headers["allow"] == plain.headers["allow"]
        media_type, params = falcon.parse_header(full.headers["content-type"])
        assert media_type == "application/json"
        assert params["domain-model"] == "ResourceDescription"
        description = full.json
        assert description["path"] == route.path
        assert description["allow"] == allow
        # every allowed method is described, nothing else is
        assert [m["method"] for m in description["methods"]] == allow[:-1]
        for method in description["methods"]:
            assert method["responses"], (route.path, method["method"])
            for response in method["responses"]:
                for code in response.get("errorCodes", []):
                    page = api.simulate_get(f"/v1/errors/{code}")
                    assert page.json["status"] == response["status"]


def test_accepted_domain_models_and_schemas_come_from_the_decoding_types(
    described: tuple[falcon.testing.TestClient, RouteTable],
) -> None:
    api, _ = described
    body = api.simulate_options(example("/v1/inventory-items/{item_id}"), headers=DESCRIPTION).json
    post = next(m for m in body["methods"] if m["method"] == "POST")
    models = InventoryItems.stock.models
    assert [a["domainModel"] for a in post["accepts"]] == [m.__name__ for m in models]
    assert [a["contentType"] for a in post["accepts"]] == [
        f"application/json; domain-model={m.__name__}" for m in models
    ]
    _, expected = msgspec.json.schema_components(models, ref_template="#/schemas/{name}")
    for model in models:
        assert body["schemas"][model.__name__] == expected[model.__name__]
    assert set(post["preconditions"]) == {"If-Match", "Idempotency-Key"}
    statuses = {r["status"] for r in post["responses"]}
    assert {202, 400, 404, 409, 412, 415, 428} <= statuses
    links = {link["rel"]: link for link in body["links"]}
    assert links["collection"]["href"].endswith("/v1/inventory-items")
    assert links["self"]["templated"] is True


def test_openapi_is_valid_and_covers_the_routing_table(
    described: tuple[falcon.testing.TestClient, RouteTable],
) -> None:
    api, routes = described
    document = api.simulate_get("/v1/openapi.json").json
    validate(document)
    assert set(document["paths"]) == {route.path for route in routes.routes}
    for route in routes.routes:
        for method, op in operations(route.resource, route.suffix).items():
            entry = document["paths"][route.path][method.lower()]
            content = entry.get("requestBody", {}).get("content", {})
            if op.body_media_type == "application/json":
                assert sorted(content) == sorted(
                    f"application/json; domain-model={m.__name__}" for m in op.accepts
                )
            assert str(op.success) in entry["responses"]
    schemas = document["components"]["schemas"]
    _, expected = msgspec.json.schema_components(
        [cars.CarRepresentation, inventory.CreateInventoryItemCommand],
        ref_template="#/components/schemas/{name}",
    )
    for name, schema in expected.items():
        assert schemas[name] == schema


def test_error_pages_come_from_the_registry(
    described: tuple[falcon.testing.TestClient, RouteTable],
) -> None:
    api, _ = described
    pages = api.simulate_get("/v1/errors").json
    assert [p["errorCode"] for p in pages] == [kind.number for kind in KINDS]
    for kind in KINDS:
        page = api.simulate_get(f"/v1/errors/{kind.number}").json
        assert (page["status"], page["title"]) == (kind.status, kind.title)


def test_a_plain_accept_keeps_the_default_array(
    described: tuple[falcon.testing.TestClient, RouteTable],
) -> None:
    api, _ = described
    for accept in ("application/json", "application/json; domain-model=Other", "*/*"):
        result = api.simulate_options("/v1/cars", headers={"Accept": accept})
        assert result.json == ["GET", "HEAD", "POST", "OPTIONS"]


def test_the_bounds_of_every_value_are_in_the_description(
    described: tuple[falcon.testing.TestClient, RouteTable],
) -> None:
    """OPTIONS and OpenAPI show the ranges the decoders enforce (issue 11)."""
    client, _ = described
    body = client.simulate_options(
        "/v1/inventory-items/00000000-0000-0000-0000-000000000001", headers=DESCRIPTION
    ).json
    count = body["schemas"]["CheckInItemsToInventoryCommand"]["properties"]["count"]
    assert (count["exclusiveMinimum"], count["maximum"]) == (0, 2**53 - 1)
    document = client.simulate_get("/v1/openapi.json").json
    schemas = document["components"]["schemas"]
    name = schemas["CreateInventoryItemCommand"]["properties"]["name"]
    assert (name["minLength"], name["maxLength"]) == (1, 200)
    assert "\\x00-\\x1f" in name["pattern"]
    car = schemas["CarRepresentation"]["properties"]
    assert car["mileage"]["maximum"] == cars.MAX_MILEAGE
    assert car["year"]["maximum"] == cars.LAST_YEAR

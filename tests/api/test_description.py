"""The API describes itself: OPTIONS, ResourceDescription and OpenAPI, checked against the
app's own routing table and the msgspec types that decode the bodies (no hand lists)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon
import falcon.testing
import msgspec
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from app import headers
from app.api import create_app
from app.auth import PUBLIC
from app.description import RouteTable, operations
from app.description.operations import PARAMETERS
from app.problems import KINDS, Problem
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


# ---------------------------------------------------------------- issue 23: generators


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" not in node:
        return node
    *_, section, name = node["$ref"].split("/")
    found: dict[str, Any] = document["components"][section][name]
    return found


def test_every_response_declares_its_headers_and_every_operation_its_scope(
    described: tuple[falcon.testing.TestClient, RouteTable],
) -> None:
    api, routes = described
    document = api.simulate_get("/v1/openapi.json").json
    validate(document)
    assert document["components"]["securitySchemes"]["bearer"] == {
        **document["components"]["securitySchemes"]["bearer"],
        "type": "http",
        "scheme": "bearer",
    }
    for route in routes.routes:
        item = document["paths"][route.path]
        assert "options" in item  # every route answers OPTIONS, and says so
        for method, entry in item.items():
            if method == "parameters":
                continue
            public = method == "options" or route.path.startswith(PUBLIC)
            scope = ["read"] if method in ("get", "head") else ["write"]
            assert entry["security"] == ([] if public else [{"bearer": scope}]), route.path
            for status, response in entry["responses"].items():
                if status == "414":  # gunicorn's own refusal, before the app
                    continue
                declared = {
                    name: _resolve(document, header)
                    for name, header in response.get("headers", {}).items()
                }
                assert declared["X-Request-Id"]["required"] is True, (route.path, status)
                if status == "304":
                    assert declared["ETag"]["required"] is True
                if status == "401":
                    assert declared["WWW-Authenticate"]["required"] is True
                if status == "503":
                    assert declared["Retry-After"]["required"] is True
                if "errorCode" in response["description"] and "content" in response:
                    assert set(response["content"]) == {
                        "application/problem+json",
                        "application/problem+xml",
                    }
    post = document["paths"]["/v1/inventory-items"]["post"]["responses"]["202"]["headers"]
    assert {"ETag", "Location", "Commit-Position"} <= set(post)
    put = document["paths"]["/v1/inventory-items/{item_id}"]["put"]["responses"]["202"]
    assert "ETag" not in put["headers"]  # RFC 9110 9.3.4: the body was not stored as sent
    get = document["paths"]["/v1/inventory-items/{item_id}"]["get"]
    assert {"200", "302", "304", "404", "410", "406"} <= set(get["responses"])
    assert list(get["responses"]["200"]["content"]) == [
        f"{kind}; domain-model={model}; version=1.0.0"
        for model in ("InventoryItemDetails", "InventoryItemSummary")
        for kind in ("application/json", "application/xml")
    ]
    named = {_resolve(document, p)["name"] for p in get["parameters"]}
    assert {"If-None-Match", "Commit-Position", "Accept-Datetime", "version"} <= named
    feed = document["paths"]["/v1/changes"]["get"]
    assert "Prefer" in {_resolve(document, p)["name"] for p in feed["parameters"]}
    assert "Preference-Applied" in feed["responses"]["200"]["headers"]


def _request(name: str, value: str) -> falcon.Request:
    return falcon.testing.create_req(headers={name: value})


def _accepted(check: Callable[[], object]) -> bool:
    try:
        check()
    except Problem as refused:
        assert refused.kind.status == 400
        return False
    return True


CHECKS: dict[str, Callable[[str], object]] = {
    "If-Match": lambda v: headers.entity_tags(_request("If-Match", v), "If-Match"),
    "If-None-Match": lambda v: headers.entity_tags(_request("If-None-Match", v), "If-None-Match"),
    "Idempotency-Key": lambda v: headers.idempotency_key(_request("Idempotency-Key", v)),
    "Prefer": lambda v: headers.preferences(_request("Prefer", v)),
    "Accept-Datetime": lambda v: headers.http_date(v, "Accept-Datetime"),
    "Commit-Position": lambda v: headers.commit_position(v, "Commit-Position"),
}


def _published(name: str) -> Any:
    schema = PARAMETERS[name].schema
    if schema.get("type") == "integer":
        return lambda v: (
            v.isascii() and v.isdigit() and Draft202012Validator(schema).is_valid(int(v))
        )
    return Draft202012Validator(schema).is_valid


def test_grammars_agree_on_the_values_people_send() -> None:
    """Published and enforced, both ways, on values people send and near misses
    (schemathesis, in tests/e2e/test_outside_tools.py, then fuzzes the same pairs)."""
    for name, value, ok in [
        ("If-Match", "*", True),
        ("If-None-Match", '"a", , "b"', True),
        ("If-None-Match", '"a" "b"', False),
        ("Idempotency-Key", '""', False),
        ("Idempotency-Key", "", False),
        ("Prefer", ",wait=1,", True),
        ("Prefer", "a,,", False),
        ("Prefer", 'return=minimal; x="y z"', True),
        ("Accept-Datetime", "Mon, 30 Feb 2026 08:49:37 GMT", False),
        ("Accept-Datetime", "Sat, 01 Jan 0000 00:00:00 GMT", False),
        ("Commit-Position", "9" * 19, True),
        ("Commit-Position", "", False),
        ("If-Match", '"abc", W/"def"', True),
        ("If-Match", "abc", False),
        ("If-None-Match", "*", True),
        ("Idempotency-Key", "8e03978e-40d5-43e8-bc93-6894a57f9324", True),
        ("Idempotency-Key", "x" * 201, False),
        ("Idempotency-Key", "a key", False),
        ("Prefer", "wait=10, respond-async", True),
        ("Prefer", "wait=(1)", False),
        ("Accept-Datetime", "Sun, 06 Nov 1994 08:49:37 GMT", True),
        ("Accept-Datetime", "Sunday, 06-Nov-94 08:49:37 GMT", True),
        ("Accept-Datetime", "Sun Nov  6 08:49:37 1994", True),
        ("Accept-Datetime", "Sun, 06 Nov 1994 25:49:37 GMT", False),
        ("Commit-Position", "0", True),
        ("Commit-Position", "-1", False),
        ("Commit-Position", "9" * 20, False),
    ]:
        assert _accepted(lambda n=name, v=value: CHECKS[n](v)) is ok, (name, value)
        assert bool(_published(name)(value)) is ok, (name, value)

"""Content negotiation (issue 18): JSON or XML by Accept with q-values, representations
chosen by their 5LMT parameters, 406 listing what is on offer, Vary, one ETag per
representation, and problem+xml for clients that take only XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import falcon.testing
import pytest

from tests.api.conftest import command
from tests.api.test_queries import create_item

XML = "application/xml"
JSON = "application/json"
DETAILS = "InventoryItemDetails"
SUMMARY = "InventoryItemSummary"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def get(
    api: falcon.testing.TestClient, path: str, accept: str | None, **headers: str
) -> falcon.testing.Result:
    sent = {"Commit-Position": headers.pop("position")} if "position" in headers else {}
    if accept is not None:
        sent["Accept"] = accept
    return api.simulate_get(path, headers={**sent, **headers})


@pytest.mark.parametrize(
    ("accept", "format_", "model"),
    [
        (None, JSON, DETAILS),
        ("*/*", JSON, DETAILS),
        (JSON, JSON, DETAILS),
        (XML, XML, DETAILS),
        ("application/*;q=0.5, application/xml", XML, DETAILS),
        ("application/json;q=0.4, application/xml;q=0.6", XML, DETAILS),
        ("application/xml;q=0.4, application/json", JSON, DETAILS),
        (BROWSER, XML, DETAILS),  # a browser ranks XML above */*
        (f"{JSON}; domain-model={SUMMARY}", JSON, SUMMARY),
        (f"{XML}; domain-model={SUMMARY}; version=1.0.0", XML, SUMMARY),
        (f"{JSON}; Domain-Model={SUMMARY}", JSON, SUMMARY),
    ],
)
def test_an_item_in_the_format_and_representation_asked_for(
    api: falcon.testing.TestClient, accept: str | None, format_: str, model: str
) -> None:
    path, etag, position = create_item(api, "Negotiated")
    result = get(api, path, accept, position=position)
    assert result.status_code == 200
    media_type, params = falcon.parse_header(result.headers["content-type"])
    assert (media_type, params["domain-model"], params["format"]) == (format_, model, format_)
    assert result.headers["vary"] == "Accept, Accept-Datetime, Accept-Encoding"
    if format_ == XML:
        root = ET.fromstring(result.content)
        assert (root.tag, root.findtext("name")) == (model, "Negotiated")
        assert {link.get("rel") for link in root.iter("item")} >= {"self", "collection"}
    else:
        assert result.json["name"] == "Negotiated"
    if model == "InventoryItemDetails" and format_ == "application/json":
        assert result.headers["etag"] == etag  # the default's ETag is the write side's


def test_xml_says_what_json_says(api: falcon.testing.TestClient) -> None:
    path, _, position = create_item(api, 'Twice <told> & "quoted"')
    as_json = get(api, path, None, position=position).json
    root = ET.fromstring(get(api, path, XML).content)
    assert root.findtext("id") == as_json["id"]
    assert root.findtext("name") == as_json["name"]
    assert root.findtext("currentCount") == str(as_json["currentCount"])
    links = [(i.get("rel"), i.get("href")) for i in root.find("links") or []]
    assert links == [(link["rel"], link["href"]) for link in as_json["links"]]


@pytest.mark.parametrize(
    "accept",
    [
        "text/html",
        "application/json; domain-model=Nonsense",
        "application/json; version=2.0.0",
        "application/json;q=0",
        "application/yaml, text/csv;q=0.5",
    ],
)
def test_nothing_on_offer_is_406_listing_what_is(
    api: falcon.testing.TestClient, accept: str
) -> None:
    path, _, position = create_item(api, "Picky")
    result = get(api, path, accept, position=position)
    assert (result.status_code, result.json["errorCode"]) == (406, 1029)
    assert (
        "application/xml; domain-model=InventoryItemSummary; version=1.0.0"
        in (result.json["available"])
    )
    listing = get(api, "/v1/inventory-items", "application/json; domain-model=Nonsense")
    assert listing.status_code == 406
    assert listing.json["available"][0].startswith("application/json; domain-model=Inventory")


def test_each_representation_has_its_own_etag_and_304(api: falcon.testing.TestClient) -> None:
    path, _, position = create_item(api, "Validated")
    summary = "application/json; domain-model=InventoryItemSummary"
    tags = {
        accept: get(api, path, accept, position=position).headers["etag"]
        for accept in (
            "application/json",
            XML,
            summary,
            f"{XML}; domain-model=InventoryItemSummary",
        )
    }
    assert len(set(tags.values())) == 4
    for accept, tag in tags.items():
        assert get(api, path, accept, **{"If-None-Match": tag}).status_code == 304
        others = [t for t in tags.values() if t != tag]
        fresh = get(api, path, accept, **{"If-None-Match": ", ".join(others)})
        assert fresh.status_code == 200, accept
    xml_page = get(api, "/v1/inventory-items", XML)
    json_page = get(api, "/v1/inventory-items", None)
    assert xml_page.headers["etag"] != json_page.headers["etag"]
    again = get(api, "/v1/inventory-items", XML, **{"If-None-Match": xml_page.headers["etag"]})
    assert (again.status_code, again.headers["vary"]) == (304, "Accept, Accept-Encoding")


def test_any_representations_etag_preconditions_a_write(api: falcon.testing.TestClient) -> None:
    path, _, position = create_item(api, "Written")
    xml_tag = get(api, path, XML, position=position).headers["etag"]
    renamed = api.simulate_put(
        path,
        body=json.dumps({"newName": "Rewritten"}),
        headers={**command("RenameInventoryItemCommand"), "If-Match": xml_tag},
    )
    assert renamed.status_code == 202
    stale = api.simulate_put(
        path,
        body=json.dumps({"newName": "Too late"}),
        headers={**command("RenameInventoryItemCommand"), "If-Match": xml_tag},
    )
    assert stale.status_code == 412


def test_problems_in_xml_for_a_client_that_takes_only_xml(api: falcon.testing.TestClient) -> None:
    missing = get(api, "/v1/inventory-items/00000000-0000-4000-8000-000000000000", XML)
    assert (missing.status_code, missing.headers["content-type"]) == (
        404,
        "application/problem+xml",
    )
    root = ET.fromstring(missing.content)
    namespace = "{urn:ietf:rfc:7807}"
    assert root.tag == f"{namespace}problem"
    assert root.findtext(f"{namespace}errorCode") == "1002"
    both = get(api, "/v1/nowhere", f"{XML}, application/json;q=0.1")
    assert both.headers["content-type"] == "application/problem+json"


def test_descriptions_list_every_format_and_representation(
    api: falcon.testing.TestClient,
) -> None:
    described = api.simulate_options(
        "/v1/cars/00000000-0000-4000-8000-000000000000",
        headers={"Accept": "application/json; domain-model=ResourceDescription"},
    ).json
    get_method = next(m for m in described["methods"] if m["method"] == "GET")
    ok = next(r for r in get_method["responses"] if r["status"] == 200)
    assert {r["contentType"] for r in ok["representations"]} == {
        "application/json; domain-model=CarRepresentation; version=1.0.0",
        "application/xml; domain-model=CarRepresentation; version=1.0.0",
        "application/json; domain-model=CarSummary; version=1.0.0",
        "application/xml; domain-model=CarSummary; version=1.0.0",
    }
    assert any(r["status"] == 406 for r in get_method["responses"])
    document = api.simulate_get("/v1/openapi.json").json
    content = document["paths"]["/v1/inventory-items"]["get"]["responses"]["200"]["content"]
    assert "application/xml; domain-model=InventoryItemList; version=1.0.0" in content

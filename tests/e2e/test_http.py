"""End to end: real esdblocal and gunicorn processes, spoken to over real HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from esdbclient import EventStoreDBClient

from tests.e2e.conftest import call

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_inventory_lifecycle_over_http(stack: tuple[int, str]) -> None:
    port, uri = stack
    json_type = "application/json"
    status, headers, _ = call(
        port, "POST", "/v1/inventory-items", {"name": "Widget"}, Content_Type=json_type
    )
    assert status == 202
    item = "/" + headers["location"].split("/", 3)[3]
    status, headers, _ = call(
        port,
        "POST",
        item,
        {"count": 3},
        Content_Type=f"{json_type}; domain-model=CheckInItemsToInventoryCommand",
        If_Match=headers["etag"],
    )
    assert status == 202
    status, _, problem = call(
        port,
        "POST",
        item,
        {"count": 4},
        Content_Type=f"{json_type}; domain-model=RemoveItemsFromInventoryCommand",
    )
    assert (status, problem["errorCode"]) == (409, 1011)
    assert call(port, "DELETE", item)[0] == 202
    status, _, body = call(port, "DELETE", item)
    assert (status, body["eventsAppended"]) == (202, 0)
    with EventStoreDBClient(uri) as client:
        stream = "inventoryItem-" + item.rsplit("/", 1)[1]
        types = [e.type for e in client.get_stream(stream)]
    assert types == [
        "InventoryItemCreated",
        "ItemsCheckedInToInventory",
        "InventoryItemDeactivated",
    ]


def test_car_trigger_pattern_over_http(stack: tuple[int, str]) -> None:
    port, uri = stack
    car = {
        "year": 2021,
        "make": "BMW",
        "model": "M5",
        "color": "white",
        "mileage": 10,
        "vin": "WBSJF0C55JB282211",
        "condition": "excellent",
        "owner": "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f",
    }
    status, headers, _ = call(port, "POST", "/v1/cars", car, Content_Type="application/json")
    assert status == 202
    path = "/" + headers["location"].split("/", 3)[3]
    status, _, body = call(
        port, "PUT", path, {**car, "mileage": 20, "color": "blue"}, Content_Type="application/json"
    )
    assert (status, body["eventsAppended"]) == (202, 2)
    status, _, body = call(
        port, "PATCH", path, {"condition": "good"}, Content_Type="application/merge-patch+json"
    )
    assert (status, body["eventsAppended"]) == (202, 1)
    status, _, problem = call(
        port, "PUT", path, {**car, "mileage": 5}, Content_Type="application/json"
    )
    assert (status, problem["errorCode"]) == (422, 1014)  # an odometer does not roll back
    with EventStoreDBClient(uri) as client:
        types = [e.type for e in client.get_stream("car-" + path.rsplit("/", 1)[1])]
    assert types == ["CarCreated", "ColorChanged", "MileageChanged", "ConditionChanged"]


def test_read_your_writes_through_gunicorn_workers(stack: tuple[int, str]) -> None:
    """Each write is read back at once, by whichever worker takes the GET, presenting the
    commit position of the 202: the GET waits for the projector instead of missing."""
    port, _ = stack
    create = "application/json; domain-model=CreateInventoryItemCommand"
    check_in = "application/json; domain-model=CheckInItemsToInventoryCommand"
    for number in range(30):
        status, headers, _ = call(
            port, "POST", "/v1/inventory-items", {"name": f"Fresh {number}"}, Content_Type=create
        )
        assert status == 202
        item = "/" + headers["location"].split("/", 3)[3]
        status, got, body = call(port, "GET", item, Commit_Position=headers["commit-position"])
        assert (status, got["etag"], body["name"]) == (200, headers["etag"], f"Fresh {number}")
        status, headers, _ = call(port, "POST", item, {"count": 2}, Content_Type=check_in)
        status, got, body = call(port, "GET", f"{item}?commitPosition={headers['commit-position']}")
        assert (status, got["etag"], body["currentCount"]) == (200, headers["etag"], 2)
        assert call(port, "GET", item, If_None_Match=got["etag"])[0] == 304
    status, headers, page = call(port, "GET", "/v1/inventory-items?query=Fresh&limit=10")
    assert (status, page["total"], len(page["items"])) == (200, 30, 10)
    assert 'rel="next"' in headers["link"] or "rel=next" in headers["link"]
    status, _, ready = call(port, "GET", "/readyz")
    assert (status, ready["projector"]["lag"]) == (200, 0)

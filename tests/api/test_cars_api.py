"""Cars over HTTP: whole representations in, exactly the differing events out."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import falcon.testing
import pytest
from esdbclient import EventStoreDBClient

from tests.api.conftest import path_of

OWNER = str(uuid4())
CAR: dict[str, Any] = {
    "year": 2020, "make": "Ford", "model": "Escape", "color": "red", "mileage": 1000,
    "vin": "1FMCU9GD5LUA12345", "condition": "good", "owner": OWNER,
}  # fmt: skip


def post_car(api: falcon.testing.TestClient) -> tuple[str, str]:
    created = api.simulate_post("/v1/cars", json=CAR)
    assert created.status_code == 202, created.json
    location = created.headers["location"]
    return path_of(location), "car-" + location.rsplit("/", 1)[1]


def types(client: EventStoreDBClient, stream: str) -> list[str]:
    return [e.type for e in client.get_stream(stream)]


@pytest.mark.parametrize(
    ("changes", "events"),
    [
        ({}, []),
        ({"color": "blue"}, ["ColorChanged"]),
        ({"mileage": 1500, "condition": "poor"}, ["MileageChanged", "ConditionChanged"]),
        ({"owner": str(uuid4()), "color": "white"}, ["ColorChanged", "OwnerChanged"]),
    ],
)
def test_put_appends_exactly_the_triggers_that_differ(
    api: falcon.testing.TestClient,
    client: EventStoreDBClient,
    changes: dict[str, Any],
    events: list[str],
) -> None:
    car, stream = post_car(api)
    result = api.simulate_put(car, json={**CAR, **changes})
    assert result.status_code == 202
    assert result.json["eventsAppended"] == len(events)
    assert types(client, stream) == ["CarCreated", *events]


@pytest.mark.parametrize(
    ("changes", "status", "code", "fields"),
    [
        ({"vin": "1FMCU9GD5LUA99999"}, 422, 1013, ["vin"]),
        ({"year": 2021, "make": "BMW", "model": "M3"}, 422, 1013, ["year", "make", "model"]),
        ({"mileage": 10}, 422, 1014, ["mileage"]),
        ({"color": "green", "mileage": -1, "extra": 1}, 400, 1000, ["extra", "color", "mileage"]),
        ({"model": "M5"}, 400, 1012, ["model"]),
        ({"year": 2028}, 400, 1012, ["year"]),  # the clock says 2026: next year is the limit
        ({"owner": "00000000-0000-0000-0000-000000000000"}, 400, 1012, ["owner"]),
    ],
)
def test_put_refusals_name_every_field(
    api: falcon.testing.TestClient,
    client: EventStoreDBClient,
    changes: dict[str, Any],
    status: int,
    code: int,
    fields: list[str],
) -> None:
    car, stream = post_car(api)
    result = api.simulate_put(car, json={**CAR, **changes})
    assert (result.status_code, result.json["errorCode"]) == (status, code), result.json
    assert [e["field"] for e in result.json["errors"]] == fields
    assert types(client, stream) == ["CarCreated"]


def test_patch_merges_then_compares(
    api: falcon.testing.TestClient, client: EventStoreDBClient
) -> None:
    car, stream = post_car(api)
    headers = {"Content-Type": "application/merge-patch+json"}
    patched = api.simulate_patch(car, body=json.dumps({"color": "blue"}), headers=headers)
    assert patched.status_code == 202
    assert types(client, stream) == ["CarCreated", "ColorChanged"]
    removed = api.simulate_patch(car, body=json.dumps({"color": None}), headers=headers)
    assert (removed.status_code, removed.json["errorCode"]) == (400, 1000)
    wrong_type = api.simulate_patch(car, json={"color": "blue"})
    assert (wrong_type.status_code, wrong_type.json["errorCode"]) == (415, 1001)


def test_delete_retires_idempotently(
    api: falcon.testing.TestClient, client: EventStoreDBClient
) -> None:
    car, stream = post_car(api)
    assert api.simulate_delete(car).json["eventsAppended"] == 1
    assert api.simulate_delete(car).json["eventsAppended"] == 0
    gone = api.simulate_put(car, json={**CAR, "color": "blue"})
    assert (gone.status_code, gone.json["errorCode"]) == (410, 1015)
    assert types(client, stream) == ["CarCreated", "CarDeleted"]


def test_created_event_carries_the_representation(
    api: falcon.testing.TestClient, client: EventStoreDBClient
) -> None:
    _, stream = post_car(api)
    (created,) = client.get_stream(stream)
    assert json.loads(created.data) == {"type": "CarCreated", **CAR}
    assert json.loads(created.metadata)["domainModel"] == "CarRepresentation"

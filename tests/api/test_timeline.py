"""Resources through time (issue 17): history, ?version=N, Memento TimeGate and TimeMap, read
from a real esdblocal through the adapter."""

from __future__ import annotations

import email.utils
import json
import time
import xml.etree.ElementTree as ET

import falcon.testing

from tests.api.conftest import command
from tests.api.test_queries import car_body, create_item


def check_in(api: falcon.testing.TestClient, path: str, count: int) -> falcon.testing.Result:
    result = api.simulate_post(
        path,
        body=json.dumps({"count": count}),
        headers={**command("CheckInItemsToInventoryCommand"), "X-Request-Id": f"r{count}"},
    )
    assert result.status_code == 202
    return result


def test_history_lists_every_change_oldest_first(api: falcon.testing.TestClient) -> None:
    path, _, _ = create_item(api, "Storied")
    for count in (1, 2, 3):
        check_in(api, path, count)
    page = api.simulate_get(f"{path}/history")
    assert page.status_code == 200
    body = page.json
    assert (body["total"], [c["version"] for c in body["items"]]) == (4, [0, 1, 2, 3])
    first, last = body["items"][0], body["items"][-1]
    assert (first["type"], first["data"]["name"]) == ("InventoryItemCreated", "Storied")
    assert (last["type"], last["data"]["count"], last["requestId"]) == (
        "ItemsCheckedInToInventory",
        3,
        "r3",
    )
    assert last["causationId"] == "r3" and last["correlationId"] == "r3"
    assert last["time"] is not None
    assert last["links"] == [
        {"rel": "memento", "href": f"http://falconframework.org{path}?version=3"}
    ]
    # the last page may grow
    assert page.headers["cache-control"] == "private, max-age=0, must-revalidate"
    full = api.simulate_get(f"{path}/history", params={"offset": "0", "limit": "2"})
    assert full.headers["cache-control"] == "private, max-age=31536000, immutable"
    assert "rel=next" in full.headers["link"]
    again = api.simulate_get(f"{path}/history", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304
    missing = api.simulate_get("/v1/cars/00000000-0000-4000-8000-000000000001/history")
    assert (missing.status_code, missing.json["errorCode"]) == (404, 1002)


def test_a_version_is_the_state_just_after_it(api: falcon.testing.TestClient) -> None:
    path, created_etag, _ = create_item(api, "Folded")
    check_in(api, path, 5)
    check_in(api, path, 7)
    at_one = api.simulate_get(path, params={"version": "1"})
    assert (at_one.status_code, at_one.json["currentCount"]) == (200, 5)
    assert at_one.headers["memento-datetime"].endswith("GMT")
    assert "rel=original" in at_one.headers["link"] and "rel=timemap" in at_one.headers["link"]
    at_zero = api.simulate_get(path, params={"version": "0"})
    assert at_zero.headers["etag"] == created_etag  # the write side's ETag of version 0
    as_xml = api.simulate_get(path, params={"version": "2"}, headers={"Accept": "application/xml"})
    assert ET.fromstring(as_xml.content).findtext("currentCount") == "12"
    beyond = api.simulate_get(path, params={"version": "3"})
    assert (beyond.status_code, beyond.json["errorCode"]) == (404, 1002)
    assert "the newest is 2" in beyond.json["detail"]
    negative = api.simulate_get(path, params={"version": "-1"})
    assert (negative.status_code, negative.json["errorCode"]) == (400, 1018)


def test_accept_datetime_makes_the_item_a_timegate(api: falcon.testing.TestClient) -> None:
    path, _, _ = create_item(api, "Gated")
    time.sleep(1.1)  # HTTP dates have whole seconds
    between = email.utils.format_datetime(email.utils.localtime(), usegmt=True)
    time.sleep(1.1)
    check_in(api, path, 4)
    gate = api.simulate_get(path, headers={"Accept-Datetime": between})
    assert gate.status_code == 302
    assert gate.headers["location"].endswith(f"{path}?version=0")
    assert gate.headers["vary"] == "Accept, Accept-Datetime"
    assert "rel=memento" in gate.headers["link"]
    later = api.simulate_get(path, headers={"Accept-Datetime": "Fri, 01 Jan 2100 00:00:00 GMT"})
    assert later.headers["location"].endswith("?version=1")
    before = api.simulate_get(path, headers={"Accept-Datetime": "Thu, 01 Jan 1970 00:00:00 GMT"})
    assert before.status_code == 404
    garbled = api.simulate_get(path, headers={"Accept-Datetime": "yesterday"})
    assert (garbled.status_code, garbled.json["errorCode"]) == (400, 1031)
    assert garbled.json["header"] == "Accept-Datetime"


def test_the_timemap_lists_every_memento(api: falcon.testing.TestClient) -> None:
    path, _, _ = create_item(api, "Mapped")
    check_in(api, path, 1)
    check_in(api, path, 2)
    timemap = api.simulate_get(f"{path}/timemap")
    assert timemap.headers["content-type"] == "application/link-format"
    lines = timemap.text.strip().split(",\n")
    assert lines[0].endswith('rel="original"') and 'rel="self"' in lines[2]
    mementos = [line for line in lines if "memento" in line]
    assert len(mementos) == 3
    assert 'rel="first memento"' in mementos[0] and 'rel="last memento"' in mementos[2]
    assert all("?version=" in m and 'datetime="' in m for m in mementos)


def test_a_retired_cars_history_stays_readable(api: falcon.testing.TestClient) -> None:
    created = api.simulate_post(
        "/v1/cars", body=json.dumps(car_body()), headers={"Content-Type": "application/json"}
    )
    car = "/" + created.headers["location"].split("/", 3)[3]
    assert api.simulate_delete(car).status_code == 202
    history = api.simulate_get(f"{car}/history").json
    assert [c["type"] for c in history["items"]] == ["CarCreated", "CarDeleted"]
    assert api.simulate_get(car, params={"version": "0"}).json["color"] == "red"
    assert api.simulate_get(car, params={"version": "1"}).status_code == 410

"""The change feed over real HTTP (issue 17): replayed from 0 it reaches exactly the read
store's versions; a long-poll wakes on a write; waiting is bounded and plain reads go on."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import call, whole_stack

pytestmark = pytest.mark.slow
CREATE = "application/json; domain-model=CreateInventoryItemCommand"
CHECK_IN = "application/json; domain-model=CheckInItemsToInventoryCommand"
CAR = {
    "year": 2020,
    "make": "BMW",
    "model": "M3",
    "color": "blue",
    "mileage": 10,
    "vin": "WBA3A5C51DF000001",
    "condition": "good",
    "owner": "7f0c6b5e-2d4a-4f1e-9a57-3c2b1d0e9f8a",
}


@pytest.fixture(scope="module")
def feed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    data = tmp_path_factory.mktemp("feed")
    with whole_stack(data, LONG_POLL_SLOTS="1", WEB_WORKERS="3") as (port, _, _):
        yield port


def path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def replay(port: int, start: str = "/v1/changes?after=0&limit=7") -> tuple[list[Any], str]:
    """Every change from the cursor on, following rel=next until a page comes back empty."""
    changes: list[Any] = []
    url = start
    while True:
        status, _, page = call(port, "GET", url)
        assert status == 200
        changes += page["items"]
        url = path(next(link["href"] for link in page["links"] if link["rel"] == "next"))
        if not page["items"]:
            return changes, url


def test_the_feed_replayed_from_zero_reaches_the_read_stores_versions(feed_stack: int) -> None:
    port = feed_stack
    items = []
    for n in range(6):
        status, headers, _ = call(
            port, "POST", "/v1/inventory-items", {"name": f"Fed {n}"}, Content_Type=CREATE
        )
        items.append(path(headers["location"]))
        for _ in range(n % 3):
            call(port, "POST", items[-1], {"count": 2}, Content_Type=CHECK_IN)
    status, headers, _ = call(port, "POST", "/v1/cars", CAR, Content_Type="application/json")
    car = path(headers["location"])
    call(port, "PUT", car, {**CAR, "color": "red", "mileage": 20}, Content_Type="application/json")
    status, headers, _ = call(port, "DELETE", items[0], Commit_Position="0")
    call(
        port, "GET", items[0], Commit_Position=headers["commit-position"]
    )  # the projector is there

    changes, _ = replay(port)
    positions = [c["position"] for c in changes]
    assert positions == sorted(positions)
    latest: dict[str, Any] = {}
    for change in changes:  # a client applying every change, in order
        latest[path(change["resource"])] = change
    for resource in [*items[1:], car]:
        status, headers, _ = call(port, "GET", resource)
        assert (status, headers["etag"]) == (200, latest[resource]["etag"]), resource
    assert latest[items[0]]["type"] == "InventoryItemDeactivated"
    assert latest[car]["version"] == 2  # created, then a color and a mileage change
    only_cars, _ = replay(port, "/v1/changes?after=0&collection=cars")
    assert {c["collection"] for c in only_cars} == {"cars"} and len(only_cars) == 3


def test_a_long_poll_wakes_on_a_write(feed_stack: int) -> None:
    port = feed_stack
    _, cursor = replay(port)
    answered: list[tuple[int, dict[str, str], Any, float]] = []

    def poll() -> None:
        started = time.monotonic()
        status, headers, page = call(port, "GET", cursor, Prefer="wait=20")
        answered.append((status, headers, page, time.monotonic() - started))

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.5)
    status, headers, _ = call(
        port, "POST", "/v1/inventory-items", {"name": "Awaited"}, Content_Type=CREATE
    )
    poller.join(timeout=30)
    ((status, got, page, seconds),) = answered
    assert (status, got["preference-applied"]) == (200, "wait=20")
    assert [path(c["resource"]) for c in page["items"]] == [path(headers["location"])]
    print(f"long-poll answered {seconds:.2f} s after it was sent (the write came at 0.5 s)")


def test_waiting_is_bounded_and_plain_reads_go_on(feed_stack: int) -> None:
    port = feed_stack
    _, cursor = replay(port)
    first = threading.Thread(target=call, args=(port, "GET", cursor), kwargs={"Prefer": "wait=3"})
    first.start()
    time.sleep(0.5)  # the one slot is taken
    status, headers, problem = call(port, "GET", cursor, Prefer="wait=3")
    assert (status, problem["errorCode"], headers["retry-after"]) == (503, 1030, "1")
    assert call(port, "GET", "/v1/inventory-items")[0] == 200
    assert call(port, "GET", cursor)[0] == 200  # without waiting, never refused
    first.join(timeout=10)


def test_a_bad_cursor_or_collection_is_400(feed_stack: int) -> None:
    port = feed_stack
    for query in ("after=-1", "after=x", "collection=boats", "limit=0", "since=3"):
        status, _, problem = call(port, "GET", f"/v1/changes?{query}")
        assert (status, problem["errorCode"]) == (400, 1018), query

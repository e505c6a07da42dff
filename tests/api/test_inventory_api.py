"""Inventory commands over HTTP: method x headers x body -> status, headers, events in the store."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from uuid import uuid4

import falcon.testing
import pytest
from esdbclient import EventStoreDBClient

from app.api import create_app
from tests.api.conftest import FIXED_NOW, command, create, path_of, settings

CREATE = "CreateInventoryItemCommand"
CHECK_IN = "CheckInItemsToInventoryCommand"
REMOVE = "RemoveItemsFromInventoryCommand"
RENAME = "RenameInventoryItemCommand"


def stream_of(result: falcon.testing.Result) -> str:
    return "inventoryItem-" + result.headers["location"].rsplit("/", 1)[1]


def test_create_answers_202_with_location_etag_and_commit_position(
    api: falcon.testing.TestClient, client: EventStoreDBClient
) -> None:
    result = create(api, "  Widget  ")
    assert result.headers["location"].startswith("http://falconframework.org/v1/inventory-items/")
    assert result.headers["etag"].startswith('"') and len(result.headers["etag"]) > 10
    assert int(result.headers["commit-position"]) > 0
    assert "domain-model=CommandAccepted" in result.headers["content-type"]
    assert result.json["eventsAppended"] == 1
    (event,) = client.get_stream(stream_of(result))
    assert event.type == "InventoryItemCreated"
    assert json.loads(event.data) == {"type": "InventoryItemCreated", "name": "Widget"}
    assert event.commit_position == int(result.headers["commit-position"])
    metadata = json.loads(event.metadata)
    assert metadata["domainModel"] == CREATE
    assert metadata["requestId"] == result.headers["x-request-id"]
    assert metadata["$causationId"] == result.headers["x-request-id"]
    assert metadata["$correlationId"] == result.headers["x-request-id"]


def test_correlation_id_is_carried_into_metadata(
    api: falcon.testing.TestClient, client: EventStoreDBClient
) -> None:
    result = api.simulate_post(
        "/v1/inventory-items",
        body=b'{"name": "W"}',
        headers={**command(CREATE), "X-Correlation-Id": "corr-1", "X-Request-Id": "req-1"},
    )
    (event,) = client.get_stream(stream_of(result))
    metadata = json.loads(event.metadata)
    assert (metadata["$correlationId"], metadata["$causationId"]) == ("corr-1", "req-1")


@pytest.mark.parametrize(
    ("content_type", "body", "status", "code"),
    [
        ("application/json", b'{"name": "W"}', 202, None),  # one command: the parameter may go
        ("application/json; domain-model=CreateInventoryItemCommand", b'{"name": "W"}', 202, None),
        ("application/json; DOMAIN-MODEL=CreateInventoryItemCommand", b'{"name": "W"}', 202, None),
        ("application/json; domain-model=RenameInventoryItemCommand", b'{"name": "W"}', 415, 1001),
        ("text/plain", b"W", 415, 1001),
        ("application/json", b"not json", 400, 1000),
        ("application/json", b'{"name": "W", "extra": 1}', 400, 1000),
        ("application/json", b'{"name": ""}', 400, 1000),
        ("application/json", b'{"name": "   "}', 422, 1009),
        ("application/json", b"{}", 400, 1000),
    ],
)
def test_create_media_types_and_bodies(
    api: falcon.testing.TestClient, content_type: str, body: bytes, status: int, code: int | None
) -> None:
    result = api.simulate_post(
        "/v1/inventory-items", body=body, headers={"Content-Type": content_type}
    )
    assert result.status_code == status, result.json
    if code is not None:
        assert result.headers["content-type"] == "application/problem+json"
        problem = result.json
        assert (problem["status"], problem["errorCode"]) == (status, code)
        assert problem["additionalInformation"].endswith(f"/v1/errors/{code}")
        assert {"type", "title", "detail", "message"} <= problem.keys()


def test_every_field_error_is_listed(api: falcon.testing.TestClient) -> None:
    result = api.simulate_post(
        "/v1/inventory-items", body=b'{"nom": 1, "extra": 2}', headers=command(CREATE)
    )
    assert result.status_code == 400
    assert {e["field"] for e in result.json["errors"]} == {"nom", "extra", "name"}


def test_ambiguous_post_names_the_accepted_models(api: falcon.testing.TestClient) -> None:
    item = path_of(create(api).headers["location"])
    result = api.simulate_post(
        item, body=b'{"count": 1}', headers={"Content-Type": "application/json"}
    )
    assert result.status_code == 415
    assert result.json["accepted"] == [
        f"application/json; domain-model={CHECK_IN}",
        f"application/json; domain-model={REMOVE}",
    ]


@pytest.mark.parametrize(
    ("steps", "status", "code"),
    [
        ([(CHECK_IN, 5)], 202, None),
        ([(CHECK_IN, 5), (REMOVE, 5)], 202, None),
        ([(REMOVE, 1)], 409, 1011),
        ([(CHECK_IN, 0)], 400, 1000),
        ([(CHECK_IN, -3)], 400, 1000),
    ],
)
def test_stock_rules(
    api: falcon.testing.TestClient, steps: list[tuple[str, int]], status: int, code: int | None
) -> None:
    item = path_of(create(api).headers["location"])
    for name, count in steps:
        result = api.simulate_post(item, body=json.dumps({"count": count}), headers=command(name))
    assert result.status_code == status
    if code:
        assert result.json["errorCode"] == code


def test_rename_and_deactivate(api: falcon.testing.TestClient, client: EventStoreDBClient) -> None:
    created = create(api)
    item = path_of(created.headers["location"])
    renamed = api.simulate_put(item, body=b'{"newName": "Gadget"}', headers=command(RENAME))
    assert renamed.status_code == 202
    first = api.simulate_delete(item)
    assert (first.status_code, first.json["eventsAppended"]) == (202, 1)
    again = api.simulate_delete(item)  # idempotent: nothing appended, still 202
    assert (again.status_code, again.json["eventsAppended"]) == (202, 0)
    assert again.headers["etag"] == first.headers["etag"]
    refused = api.simulate_put(item, body=b'{"newName": "X"}', headers=command(RENAME))
    assert (refused.status_code, refused.json["errorCode"]) == (409, 1010)
    types = [e.type for e in client.get_stream(stream_of(created))]
    assert types == ["InventoryItemCreated", "InventoryItemRenamed", "InventoryItemDeactivated"]


def test_missing_item_is_404_before_any_precondition(api: falcon.testing.TestClient) -> None:
    missing = f"/v1/inventory-items/{uuid4()}"
    result = api.simulate_put(
        missing, body=b'{"newName": "X"}', headers={**command(RENAME), "If-Match": '"bogus"'}
    )
    assert (result.status_code, result.json["errorCode"]) == (404, 1002)


def etag_cases() -> list[tuple[str, Callable[[str, str], str], int]]:
    return [
        ("current", lambda current, other: current, 202),
        ("star", lambda current, other: "*", 202),
        ("list with current", lambda current, other: f'"nope", {current}', 202),
        ("stale", lambda current, other: other, 412),
        ("other resource", lambda current, other: "OTHER", 412),
        ("garbage", lambda current, other: '"garbage"', 412),
        ("weak", lambda current, other: "W/" + current, 412),
    ]


@pytest.mark.parametrize(
    ("label", "if_match", "status"), etag_cases(), ids=[c[0] for c in etag_cases()]
)
def test_if_match(
    api: falcon.testing.TestClient, label: str, if_match: Callable[[str, str], str], status: int
) -> None:
    created = create(api)
    item = path_of(created.headers["location"])
    stale = created.headers["etag"]
    checked_in = api.simulate_post(item, body=b'{"count": 1}', headers=command(CHECK_IN))
    current = checked_in.headers["etag"]
    other_item_tag = create(api).headers["etag"]
    header = if_match(current, stale).replace("OTHER", other_item_tag)
    result = api.simulate_post(
        item, body=b'{"count": 1}', headers={**command(CHECK_IN), "If-Match": header}
    )
    assert result.status_code == status, result.json
    if status == 412:
        assert result.json["errorCode"] == 1004


def test_if_none_match_star_on_create(api: falcon.testing.TestClient) -> None:
    """Creating with If-None-Match: * succeeds; a keyed retry is answered as the first was."""
    headers = {**command(CREATE), "Idempotency-Key": str(uuid4()), "If-None-Match": "*"}
    first = api.simulate_post("/v1/inventory-items", body=b'{"name": "W"}', headers=headers)
    assert first.status_code == 202
    retry = api.simulate_post("/v1/inventory-items", body=b'{"name": "W"}', headers=headers)
    assert (retry.status_code, retry.headers["location"]) == (202, first.headers["location"])


def test_idempotency_key_answers_a_retry_as_the_first_time(
    api: falcon.testing.TestClient, client: EventStoreDBClient
) -> None:
    headers = {**command(CREATE), "Idempotency-Key": str(uuid4())}
    first = api.simulate_post("/v1/inventory-items", body=b'{"name": "Once"}', headers=headers)
    retry = api.simulate_post("/v1/inventory-items", body=b'{"name": "Once"}', headers=headers)
    assert retry.status_code == 202
    for header in ("location", "etag", "commit-position"):
        assert retry.headers[header] == first.headers[header]
    assert len(client.get_stream(stream_of(first))) == 1
    item = path_of(first.headers["location"])
    post = {**command(CHECK_IN), "Idempotency-Key": str(uuid4())}
    stocked = api.simulate_post(item, body=b'{"count": 2}', headers=post)
    again = api.simulate_post(item, body=b'{"count": 2}', headers=post)
    assert again.headers["commit-position"] == stocked.headers["commit-position"]
    assert [e.type for e in client.get_stream(stream_of(first))].count(
        "ItemsCheckedInToInventory"
    ) == 1
    different = api.simulate_post(item, body=b'{"count": 3}', headers=post)
    assert (different.status_code, different.json["errorCode"]) == (422, 1008)


def test_require_if_match_turns_a_missing_precondition_into_428(
    esdb_uri: str, tmp_path: object, api: falcon.testing.TestClient
) -> None:
    from pathlib import Path

    from app.api import create_app
    from tests.api.conftest import settings

    strict = falcon.testing.TestClient(
        create_app(settings(esdb_uri, Path(str(tmp_path)), require_if_match=True))
    )
    created = strict.simulate_post(
        "/v1/inventory-items", body=b'{"name": "W"}', headers=command(CREATE)
    )
    assert created.status_code == 202  # creating needs no If-Match
    item = path_of(created.headers["location"])
    bare = strict.simulate_post(item, body=b'{"count": 1}', headers=command(CHECK_IN))
    assert (bare.status_code, bare.json["errorCode"]) == (428, 1005)
    with_tag = {**command(CHECK_IN), "If-Match": created.headers["etag"]}
    assert strict.simulate_post(item, body=b'{"count": 1}', headers=with_tag).status_code == 202


def test_sixteen_writers_with_the_same_if_match_one_wins(
    api: falcon.testing.TestClient, client: EventStoreDBClient
) -> None:
    created = create(api)
    item = path_of(created.headers["location"])
    headers = {**command(CHECK_IN), "If-Match": created.headers["etag"]}
    barrier = threading.Barrier(16)
    statuses: list[int] = []

    def write() -> None:
        barrier.wait()
        statuses.append(api.simulate_post(item, body=b'{"count": 1}', headers=headers).status_code)

    threads = [threading.Thread(target=write) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [202] + [412] * 15
    types = [e.type for e in client.get_stream(stream_of(created))]
    assert types == ["InventoryItemCreated", "ItemsCheckedInToInventory"]


def test_options_405_and_errors(api: falcon.testing.TestClient) -> None:
    options = api.simulate_options("/v1/inventory-items")
    assert options.status_code == 200
    assert options.json == ["GET", "HEAD", "POST", "OPTIONS"]
    assert options.headers["allow"] == "GET, HEAD, POST, OPTIONS"
    not_allowed = api.simulate_patch("/v1/inventory-items")
    assert not_allowed.status_code == 405
    assert "POST" in not_allowed.headers["allow"]
    assert not_allowed.headers["content-type"] == "application/problem+json"
    assert not_allowed.json["errorCode"] == 1003
    assert api.simulate_options("/v1/errors/1011").json == ["GET", "HEAD", "OPTIONS"]
    assert api.simulate_options("/v1/inventory-items/" + str(uuid4())).json == [
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "DELETE",
        "OPTIONS",
    ]
    head = api.simulate_head("/v1/errors/1011")
    assert (head.status_code, head.text) == (200, "")
    page = api.simulate_get("/v1/errors/1011")
    assert page.json["title"] == "Insufficient stock"
    assert api.simulate_get("/v1/nowhere").json["errorCode"] == 1002


def test_two_workers_with_stale_views_decide_on_what_the_store_holds(
    esdb_uri: str, tmp_path_factory: pytest.TempPathFactory, client: EventStoreDBClient
) -> None:
    """Each worker appends with the version it last knew, without reading first. A stale
    view may only cost a round trip: every refusal, every "nothing to do" and every failed
    precondition decided on it is decided again on the stream's new events."""
    data = tmp_path_factory.mktemp("workers")
    a, b = (
        falcon.testing.TestClient(create_app(settings(esdb_uri, data), clock=lambda: FIXED_NOW))
        for _ in range(2)
    )
    created = create(a)
    item = path_of(created.headers["location"])
    assert a.simulate_post(item, body=b'{"count": 5}', headers=command(CHECK_IN)).status_code == 202
    assert b.simulate_post(item, body=b'{"count": 5}', headers=command(REMOVE)).status_code == 202
    # a believes 5 are in stock; the store says 0: refused, nothing appended.
    stale = a.simulate_post(item, body=b'{"count": 1}', headers=command(REMOVE))
    assert (stale.status_code, stale.json["errorCode"]) == (409, 1011)
    checked_in = b.simulate_post(item, body=b'{"count": 3}', headers=command(CHECK_IN))
    # a's view is a version behind the ETag it is shown: the precondition holds in the store.
    matched = {**command(REMOVE), "If-Match": checked_in.headers["etag"]}
    assert a.simulate_post(item, body=b'{"count": 3}', headers=matched).status_code == 202
    assert a.simulate_delete(item).status_code == 202
    renamed = b.simulate_put(item, body=b'{"newName": "Late"}', headers=command(RENAME))
    assert (renamed.status_code, renamed.json["errorCode"]) == (409, 1010)
    again = b.simulate_delete(item)
    assert (again.status_code, again.json["eventsAppended"]) == (202, 0)
    types = [e.type for e in client.get_stream(stream_of(created))]
    assert types == [
        "InventoryItemCreated",
        "ItemsCheckedInToInventory",
        "ItemsRemovedFromInventory",
        "ItemsCheckedInToInventory",
        "ItemsRemovedFromInventory",
        "InventoryItemDeactivated",
    ]

"""The query side through Falcon's TestClient: writes go to a real esdblocal, the real
projector (a thread of the session) folds them into the read store, and GET/HEAD answer
from it. Every read after a write presents the write's Commit-Position (read-your-writes),
so no test sleeps or polls.
"""

from __future__ import annotations

import json
import random
import string
from pathlib import Path
from typing import Any
from uuid import uuid4

import falcon.testing
import pytest

from app.api import create_app
from eventstore.streams import EventStore
from tests.api.conftest import FIXED_NOW, command, path_of, settings

VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
Written = tuple[str, str, str]  # path, etag, commit position


def create_item(api: falcon.testing.TestClient, name: str) -> Written:
    result = api.simulate_post(
        "/v1/inventory-items",
        body=json.dumps({"name": name}),
        headers=command("CreateInventoryItemCommand"),
    )
    assert result.status_code == 202, result.text
    headers = result.headers
    return path_of(headers["location"]), headers["etag"], headers["commit-position"]


def new_vin() -> str:
    return "".join(random.choices(VIN_ALPHABET, k=17))


def car_body(**changes: Any) -> dict[str, Any]:
    body = {
        "year": 2020,
        "make": "Ford",
        "model": "Escape",
        "color": "red",
        "mileage": 100,
        "vin": new_vin(),
        "condition": "good",
        "owner": str(uuid4()),
    }
    return {**body, **changes}


def create_car(api: falcon.testing.TestClient, **changes: Any) -> Written:
    result = api.simulate_post(
        "/v1/cars",
        body=json.dumps(car_body(**changes)),
        headers={"Content-Type": "application/json"},
    )
    assert result.status_code == 202, result.text
    headers = result.headers
    return path_of(headers["location"]), headers["etag"], headers["commit-position"]


def read(
    api: falcon.testing.TestClient, path: str, position: str, **headers: str
) -> falcon.testing.Result:
    return api.simulate_get(path, headers={"Commit-Position": position, **headers})


def token() -> str:
    return "".join(random.choices(string.ascii_lowercase, k=10))


def rels(result: falcon.testing.Result) -> dict[str, str]:
    return {link["rel"]: link["href"] for link in result.json["links"]}


# ---------------------------------------------------------------- items


def test_an_item_reads_back_with_the_etag_its_write_handed_out(
    api: falcon.testing.TestClient,
) -> None:
    path, etag, position = create_item(api, "Widget")
    result = read(api, path, position)
    assert result.status_code == 200
    assert result.headers["etag"] == etag
    assert result.headers["cache-control"] == "private, max-age=0, must-revalidate"
    media_type, params = falcon.parse_header(result.headers["content-type"])
    assert (media_type, params["domain-model"]) == ("application/json", "InventoryItemDetails")
    item_id = path.rsplit("/", 1)[1]
    assert result.json["id"] == item_id
    assert result.json["name"] == "Widget"
    assert result.json["currentCount"] == 0
    assert rels(result) == {
        "self": f"http://falconframework.org{path}",
        "collection": ("http://falconframework.org/v1/inventory-items"),
    }
    assert "rel=self" in result.headers["link"] and "rel=collection" in result.headers["link"]


def test_a_later_write_changes_the_item_and_its_etag(api: falcon.testing.TestClient) -> None:
    path, first_etag, _ = create_item(api, "Widget")
    checked_in = api.simulate_post(
        path, body=json.dumps({"count": 7}), headers=command("CheckInItemsToInventoryCommand")
    )
    assert checked_in.status_code == 202
    result = read(api, path, checked_in.headers["commit-position"])
    assert result.json["currentCount"] == 7
    assert result.headers["etag"] == checked_in.headers["etag"] != first_etag


@pytest.mark.parametrize(
    ("if_none_match", "status"),
    [
        ("{etag}", 304),
        ("W/{etag}", 304),  # If-None-Match compares weakly (RFC 9110 13.1.2)
        ('"other", {etag}', 304),
        ("*", 304),
        ('"someone-elses"', 200),
        ("{stale}", 200),
    ],
)
def test_conditional_get_of_an_item(
    api: falcon.testing.TestClient, if_none_match: str, status: int
) -> None:
    path, stale, _ = create_item(api, "Widget")
    renamed = api.simulate_put(
        path, body=json.dumps({"newName": "Gadget"}), headers=command("RenameInventoryItemCommand")
    )
    assert "etag" not in renamed.headers  # RFC 9110 9.3.4: the body sent is not what is stored
    etag, position = renamed.json["etag"], renamed.headers["commit-position"]
    header = if_none_match.format(etag=etag, stale=stale)
    result = read(api, path, position, **{"If-None-Match": header})
    assert result.status_code == status
    assert result.headers["etag"] == etag
    assert result.headers["cache-control"] == "private, max-age=0, must-revalidate"
    if status == 304:
        assert result.text == ""
    else:
        assert result.json["name"] == "Gadget"


def test_missing_items_are_404_and_retired_ones_410(api: falcon.testing.TestClient) -> None:
    missing = api.simulate_get(f"/v1/inventory-items/{uuid4()}")
    assert (missing.status_code, missing.json["errorCode"]) == (404, 1002)
    assert api.simulate_get(f"/v1/cars/{uuid4()}").status_code == 404
    path, _, _ = create_item(api, "Old widget")
    deactivated = api.simulate_delete(path)
    gone = read(api, path, deactivated.headers["commit-position"])
    assert (gone.status_code, gone.json["errorCode"]) == (410, 1015)
    assert gone.headers["content-type"] == "application/problem+json"
    car, _, _ = create_car(api)
    retired = api.simulate_delete(car)
    assert read(api, car, retired.headers["commit-position"]).status_code == 410


def test_a_car_reads_back_as_exactly_the_representation_it_can_be_put_back_as(
    api: falcon.testing.TestClient,
) -> None:
    body = car_body()
    created = api.simulate_post(
        "/v1/cars", body=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    path = path_of(created.headers["location"])
    result = read(api, path, created.headers["commit-position"])
    assert result.status_code == 200
    assert result.json == body
    assert falcon.parse_header(result.headers["content-type"])[1]["domain-model"] == (
        "CarRepresentation"
    )
    changed = {**result.json, "color": "blue", "mileage": 250}
    put = api.simulate_put(
        path,
        body=json.dumps(changed),
        headers={"If-Match": result.headers["etag"], "Content-Type": "application/json"},
    )
    assert put.status_code == 202
    assert put.json["eventsAppended"] == 2
    again = read(api, path, put.headers["commit-position"])
    assert again.json == changed
    assert again.headers["etag"] == put.json["etag"]


# ---------------------------------------------------------------- collections


@pytest.fixture(scope="module")
def twenty_five(api: falcon.testing.TestClient) -> tuple[str, list[str], str]:
    """25 items sharing a word no other test uses: (word, ids in creation order, position)."""
    word = token()
    ids, position = [], ""
    for number in range(25):
        path, _, position = create_item(api, f"Paged {word} {number:02}")
        ids.append(path.rsplit("/", 1)[1])
    return word, ids, position


@pytest.mark.parametrize(
    ("offset", "expected", "links"),
    [
        (0, range(0, 10), {"self", "first", "next", "last"}),
        (10, range(10, 20), {"self", "first", "prev", "next", "last"}),
        (20, range(20, 25), {"self", "first", "prev", "last"}),
        (25, range(0), {"self", "first", "prev", "last"}),
    ],
)
def test_pages_and_their_links(
    api: falcon.testing.TestClient,
    twenty_five: tuple[str, list[str], str],
    offset: int,
    expected: range,
    links: set[str],
) -> None:
    word, ids, position = twenty_five
    result = read(api, f"/v1/inventory-items?query={word}&offset={offset}", position)
    assert result.status_code == 200
    page = result.json
    assert (page["offset"], page["limit"], page["total"]) == (offset, 10, 25)
    assert [item["id"] for item in page["items"]] == [ids[i] for i in expected]
    assert set(rels(result)) == links
    assert rels(result)["last"].endswith("offset=20&limit=10")
    assert rels(result)["first"].endswith("offset=0&limit=10")
    if "next" in links:
        assert rels(result)["next"].endswith(f"offset={offset + 10}&limit=10")
    header = result.headers["link"]
    for rel in links - {"self"}:
        assert f"rel={rel}" in header
    assert falcon.parse_header(result.headers["content-type"])[1]["domain-model"] == (
        "InventoryItemList"
    )
    for item in page["items"]:
        assert {link["rel"] for link in item["links"]} == {"self", "collection"}
        assert item["active"] is True
        assert item["etag"].startswith('"')


def test_an_empty_list_links_first_and_last_to_offset_zero(
    api: falcon.testing.TestClient,
) -> None:
    result = api.simulate_get(f"/v1/inventory-items?query={token()}")
    assert result.json["total"] == 0 and result.json["items"] == []
    assert set(rels(result)) == {"self", "first", "last"}
    assert rels(result)["last"] == rels(result)["first"]


def test_limit_is_capped_at_100(api: falcon.testing.TestClient) -> None:
    result = api.simulate_get("/v1/inventory-items?limit=1000")
    assert result.status_code == 200
    assert result.json["limit"] == 100


def test_a_collection_revalidates_with_304_until_its_page_changes(
    api: falcon.testing.TestClient,
) -> None:
    word = token()
    _, _, position = create_item(api, f"Cached {word}")
    url = f"/v1/inventory-items?query={word}"
    first = read(api, url, position)
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "private, max-age=0, must-revalidate"
    same = api.simulate_get(url, headers={"If-None-Match": etag})
    assert (same.status_code, same.text, same.headers["etag"]) == (304, "", etag)
    _, _, position = create_item(api, f"Cached {word} too")
    changed = read(api, url, position, **{"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert changed.json["total"] == 2


@pytest.mark.parametrize(
    ("state", "names"),
    [("active", ["kept"]), ("deactivated", ["dropped"]), ("all", ["kept", "dropped"])],
)
def test_state_filter(api: falcon.testing.TestClient, state: str, names: list[str]) -> None:
    word = token()
    create_item(api, f"{word} kept")
    dropped, _, _ = create_item(api, f"{word} dropped")
    position = api.simulate_delete(dropped).headers["commit-position"]
    result = read(api, f"/v1/inventory-items?query={word}&state={state}", position)
    assert [item["name"].split()[1] for item in result.json["items"]] == names
    assert [item["active"] for item in result.json["items"]] == [n == "kept" for n in names]


def test_car_filters(api: falcon.testing.TestClient) -> None:
    owner = str(uuid4())
    create_car(api, owner=owner, color="red")
    create_car(api, owner=owner, color="blue", make="BMW", model="M3")
    _, _, position = create_car(api, owner=owner, color="blue")
    by_owner = read(api, f"/v1/cars?owner={owner}", position).json
    assert by_owner["total"] == 3
    assert {item["owner"] for item in by_owner["items"]} == {owner}
    blue = api.simulate_get(f"/v1/cars?owner={owner}&color=blue").json
    assert [(i["make"], i["color"]) for i in blue["items"]] == [("BMW", "blue"), ("Ford", "blue")]
    bmw = api.simulate_get(f"/v1/cars?owner={owner}&make=BMW").json
    assert [i["model"] for i in bmw["items"]] == ["M3"]
    assert (
        falcon.parse_header(api.simulate_get(f"/v1/cars?owner={owner}").headers["content-type"])[1][
            "domain-model"
        ]
        == "CarList"
    )


@pytest.mark.parametrize(
    "query",
    [
        "offset=-1",
        "offset=x",
        "limit=0",
        "limit=ten",
        "state=gone",
        "colour=red",
        "owner=nobody",
        "commitPosition=later",
    ],
)
def test_bad_query_parameters_are_400(api: falcon.testing.TestClient, query: str) -> None:
    path = "/v1/cars" if query.startswith(("colour", "owner")) else "/v1/inventory-items"
    result = api.simulate_get(f"{path}?{query}")
    assert result.status_code == 400
    assert result.headers["content-type"] == "application/problem+json"
    assert result.json["errorCode"] == 1018


# ---------------------------------------------------------------- search, entry point, HEAD


def test_search_finds_both_contexts_and_only_active_resources(
    api: falcon.testing.TestClient,
) -> None:
    vin = new_vin()
    word = vin[3:11].lower()
    create_item(api, f"Spare part for {word}")
    retired, _, _ = create_item(api, f"Old part for {word}")
    api.simulate_delete(retired)
    _, _, position = create_car(api, vin=vin)
    result = read(api, f"/v1/search?query={word.upper()}", position)
    assert result.status_code == 200
    assert result.json["total"] == 2
    assert sorted(hit["kind"] for hit in result.json["items"]) == ["cars", "inventory-items"]
    assert all(hit["links"][0]["rel"] == "self" for hit in result.json["items"])
    assert api.simulate_get("/v1/search").json["errorCode"] == 1018


def test_entry_point_links_every_collection_and_search(api: falcon.testing.TestClient) -> None:
    rels_ = {link["rel"] for link in api.simulate_get("/v1").json["links"]}
    assert {"inventory-items", "cars", "search", "errors"} <= rels_


@pytest.mark.parametrize(
    "path", ["/v1", "/v1/inventory-items", "/v1/cars?limit=2", "/v1/search?query=part", "/healthz"]
)
def test_head_has_get_headers_and_no_body(api: falcon.testing.TestClient, path: str) -> None:
    got = api.simulate_get(path)
    head = api.simulate_head(path)
    assert head.status_code == got.status_code == 200
    assert head.text == ""
    for name in ("content-type", "etag", "link", "cache-control"):
        assert head.headers.get(name) == got.headers.get(name)


def test_head_of_an_item(api: falcon.testing.TestClient) -> None:
    path, etag, position = create_item(api, "Headed")
    head = api.simulate_head(path, headers={"Commit-Position": position})
    assert (head.status_code, head.text, head.headers["etag"]) == (200, "", etag)
    assert api.simulate_head(f"/v1/inventory-items/{uuid4()}").status_code == 404


# ---------------------------------------------------------------- read-your-writes


def test_the_commit_position_can_be_a_query_parameter(api: falcon.testing.TestClient) -> None:
    path, etag, position = create_item(api, "Parameter")
    result = api.simulate_get(f"{path}?commitPosition={position}")
    assert (result.status_code, result.headers["etag"]) == (200, etag)


def test_a_position_the_projector_has_not_reached_is_503_with_retry_after(
    api: falcon.testing.TestClient, esdb_uri: str, tmp_path: Path
) -> None:
    """A read store no projector feeds never reaches a real write's position."""
    _, _, position = create_item(api, "Unprojected")
    behind = falcon.testing.TestClient(
        create_app(settings(esdb_uri, tmp_path, read_wait=0.05), clock=lambda: FIXED_NOW)
    )
    result = behind.simulate_get("/v1/inventory-items", headers={"Commit-Position": position})
    assert result.status_code == 503
    assert result.headers["retry-after"] == "1"
    assert result.json["errorCode"] == 1019
    assert result.json["reached"] is None


def test_a_position_no_write_has_reached_is_400(api: falcon.testing.TestClient) -> None:
    result = api.simulate_get("/v1/inventory-items", headers={"Commit-Position": str(10**15)})
    assert (result.status_code, result.json["errorCode"]) == (400, 1018)


class FollowerStore(EventStore):
    """The store as a web reading from a follower sees it: its head stops at ``seen`` (the
    follower has not replicated later writes yet) and is not taken as the truth."""

    def __init__(self, uri: str, seen: int) -> None:
        super().__init__(uri)
        self.head_is_current = False
        self._seen = seen

    def head(self, timeout: float = 1.0) -> int:
        return min(self._seen, super().head(timeout))


def test_a_follower_that_trails_the_write_waits_rather_than_refusing(
    api: falcon.testing.TestClient, esdb_uri: str, api_data: Path
) -> None:
    seen = EventStore(esdb_uri).head()
    path, etag, position = create_item(api, "Replicated later")
    assert int(position) > seen
    follower = falcon.testing.TestClient(
        create_app(
            settings(esdb_uri, api_data, read_wait=5),
            clock=lambda: FIXED_NOW,
            store=FollowerStore(esdb_uri, seen),
        )
    )
    result = follower.simulate_get(path, headers={"Commit-Position": position})
    assert (result.status_code, result.headers["etag"]) == (200, etag)


def test_from_a_follower_a_position_never_written_is_400_after_the_wait(
    esdb_uri: str, api_data: Path
) -> None:
    follower = falcon.testing.TestClient(
        create_app(
            settings(esdb_uri, api_data, read_wait=0.2),
            clock=lambda: FIXED_NOW,
            store=FollowerStore(esdb_uri, 0),
        )
    )
    result = follower.simulate_get("/v1/inventory-items", headers={"Commit-Position": str(10**15)})
    assert (result.status_code, result.json["errorCode"]) == (400, 1018)


def test_readiness_reports_the_projector(api: falcon.testing.TestClient) -> None:
    _, _, position = create_item(api, "Ready")
    read(api, "/v1/inventory-items?limit=1", position)
    ready = api.simulate_get("/readyz")
    assert ready.status_code == 200
    assert ready.json["status"] == "ready"
    assert ready.json["eventStore"]["reachable"] is True
    assert ready.json["projector"]["position"] >= int(position)
    assert ready.json["projector"]["lag"] >= 0
    assert api.simulate_get("/healthz").json == {"status": "ok"}


def test_readiness_without_a_projector_is_503(esdb_uri: str, tmp_path: Path) -> None:
    alone = falcon.testing.TestClient(create_app(settings(esdb_uri, tmp_path)))
    result = alone.simulate_get("/readyz")
    assert result.status_code == 503
    assert result.json["projector"]["started"] is False
    assert alone.simulate_get("/v1/inventory-items").json["total"] == 0


@pytest.mark.parametrize("query", ["a\x00bc", 'quote"d', "%_", "ü", "x" * 300])
def test_odd_search_text_is_searched_not_crashed_on(
    api: falcon.testing.TestClient, query: str
) -> None:
    result = api.simulate_get("/v1/search", params={"query": query})
    assert result.status_code == 200
    assert result.json["query"] == query.strip()
